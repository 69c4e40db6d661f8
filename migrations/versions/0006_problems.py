"""problems raised by districts and centres, tracked to resolution; dose records by appointment

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 05:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('problem',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('district_id', sa.Integer(), nullable=False),
    sa.Column('centre_id', sa.Integer(), nullable=True),
    sa.Column('title', sa.String(length=120), nullable=False),
    sa.Column('details', sa.Text(), nullable=False),
    sa.Column('severity', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=15), nullable=False),
    sa.Column('raised_by', sa.Integer(), nullable=False),
    sa.Column('raised_at', sa.DateTime(), nullable=False),
    sa.Column('opened_at', sa.DateTime(), nullable=False),
    sa.Column('acknowledged_at', sa.DateTime(), nullable=True),
    sa.Column('resolved_at', sa.DateTime(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['centre_id'], ['centre.id'], name=op.f('fk_problem_centre_id_centre')),
    sa.ForeignKeyConstraint(['district_id'], ['district.id'], name=op.f('fk_problem_district_id_district')),
    sa.ForeignKeyConstraint(['raised_by'], ['staff_user.id'], name=op.f('fk_problem_raised_by_staff_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_problem'))
    )
    op.create_index(op.f('ix_problem_district_id'), 'problem', ['district_id'], unique=False)
    op.create_index(op.f('ix_problem_status'), 'problem', ['status'], unique=False)
    op.create_table('problem_note',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('problem_id', sa.Integer(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('status_to', sa.String(length=15), nullable=True),
    sa.ForeignKeyConstraint(['author_id'], ['staff_user.id'], name=op.f('fk_problem_note_author_id_staff_user')),
    sa.ForeignKeyConstraint(['problem_id'], ['problem.id'], name=op.f('fk_problem_note_problem_id_problem')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_problem_note'))
    )
    op.create_index(op.f('ix_problem_note_problem_id'), 'problem_note', ['problem_id'], unique=False)
    # the watch reads a dose record by its appointment (an offline dose answered or not)
    op.create_index(op.f('ix_dose_record_appointment_id'), 'dose_record', ['appointment_id'],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_dose_record_appointment_id'), table_name='dose_record')
    op.drop_index(op.f('ix_problem_note_problem_id'), table_name='problem_note')
    op.drop_table('problem_note')
    op.drop_index(op.f('ix_problem_status'), table_name='problem')
    op.drop_index(op.f('ix_problem_district_id'), table_name='problem')
    op.drop_table('problem')
