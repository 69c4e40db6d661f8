"""operators on call: a mobile number, on call or not, a language for their SMS

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('staff_user') as batch:
        batch.add_column(sa.Column('mobile', sa.String(length=10), nullable=True))
        batch.add_column(sa.Column('on_call', sa.Boolean(), server_default=sa.false(),
                                   nullable=False))
        batch.add_column(sa.Column('language', sa.String(length=2), server_default='hi',
                                   nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('staff_user') as batch:
        batch.drop_column('language')
        batch.drop_column('on_call')
        batch.drop_column('mobile')
