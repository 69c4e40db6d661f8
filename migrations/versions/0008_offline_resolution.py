"""the district resolves doses given offline that could not be recorded

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('offline_dose') as batch:
        batch.add_column(sa.Column('resolved_by', sa.String(length=80), nullable=True))
        batch.add_column(sa.Column('resolved_at', sa.DateTime(), nullable=True))
        batch.add_column(sa.Column('resolution_note', sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('offline_dose') as batch:
        batch.drop_column('resolution_note')
        batch.drop_column('resolved_at')
        batch.drop_column('resolved_by')
