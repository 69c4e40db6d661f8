"""the servers' own reports for the operators' view (teeka.watch.beat)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTS = ('window_s', 'requests', 'crowd', 'shed_work', 'shed_crowd', 'busy', 'failed',
          'lag_samples', 'lag_slow', 'lag_stalled')


def upgrade() -> None:
    op.create_table(
        'server_beat',
        sa.Column('name', sa.String(length=120), nullable=False),
        sa.Column('host', sa.String(length=100), nullable=False),
        sa.Column('pid', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('runs_worker', sa.Boolean(), nullable=False),
        sa.Column('started_at', sa.DateTime(), nullable=False),
        sa.Column('beat_at', sa.DateTime(), nullable=False),
        sa.Column('stopped_at', sa.DateTime(), nullable=True),
        *(sa.Column(c, sa.Integer(), nullable=False) for c in COUNTS),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_server_beat')),
    )
    op.create_index(op.f('ix_server_beat_beat_at'), 'server_beat', ['beat_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_server_beat_beat_at'), table_name='server_beat')
    op.drop_table('server_beat')
