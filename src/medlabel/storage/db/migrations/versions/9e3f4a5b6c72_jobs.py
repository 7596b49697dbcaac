"""jobs

Revision ID: 9e3f4a5b6c72
Revises: 8d2e3f4a5b61
Create Date: 2026-11-22 07:40:00
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401 - used once the tables are filled in
from alembic import op  # noqa: F401

import medlabel.storage.db.base  # noqa: F401

revision = "9e3f4a5b6c72"
down_revision = "8d2e3f4a5b61"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
