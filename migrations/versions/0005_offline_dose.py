"""doses given offline from a day sheet, as uploaded

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('offline_dose',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('centre_id', sa.Integer(), nullable=False),
    sa.Column('appointment_id', sa.String(length=36), nullable=True),
    sa.Column('reference_id', sa.String(length=14), nullable=False),
    sa.Column('session_id', sa.String(length=36), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('batch', sa.String(length=40), nullable=False),
    sa.Column('given_at', sa.DateTime(), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.String(length=40), nullable=True),
    sa.Column('dose_record_id', sa.Integer(), nullable=True),
    sa.Column('uploaded_by', sa.String(length=80), nullable=False),
    sa.Column('uploaded_at', sa.DateTime(), nullable=False),
    sa.Column('uploads', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointment.id'], name=op.f('fk_offline_dose_appointment_id_appointment')),
    sa.ForeignKeyConstraint(['centre_id'], ['centre.id'], name=op.f('fk_offline_dose_centre_id_centre')),
    sa.ForeignKeyConstraint(['dose_record_id'], ['dose_record.id'], name=op.f('fk_offline_dose_dose_record_id_dose_record')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_offline_dose')),
    sa.UniqueConstraint('centre_id', 'appointment_id', name='one_per_appointment')
    )
    op.create_index(op.f('ix_offline_dose_centre_id'), 'offline_dose', ['centre_id'], unique=False)
    op.create_index(op.f('ix_offline_dose_reference_id'), 'offline_dose', ['reference_id'],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_offline_dose_reference_id'), table_name='offline_dose')
    op.drop_index(op.f('ix_offline_dose_centre_id'), table_name='offline_dose')
    op.drop_table('offline_dose')
