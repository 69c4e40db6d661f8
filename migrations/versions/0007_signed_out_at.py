"""logging out ends the sessions begun before it

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ('account', 'staff_user'):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('signed_out_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    for table in ('account', 'staff_user'):
        with op.batch_alter_table(table) as batch:
            batch.drop_column('signed_out_at')
