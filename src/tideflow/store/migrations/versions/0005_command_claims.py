"""Command claims: a queued command is claimed by the process that applies it and deleted
only once applied, so a lost reply never drops it.

Revision ID: 0005
Revises: 0004
Create Date: 2024-06-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

_NAME = 191


def upgrade(prefix: str) -> None:
    op.add_column(f"{prefix}commands", sa.Column("claimed_by", sa.String(_NAME), nullable=True))


def downgrade(prefix: str) -> None:
    with op.batch_alter_table(f"{prefix}commands") as batch:
        batch.drop_column("claimed_by")
