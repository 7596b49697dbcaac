"""reader_studies

Revision ID: 8d2e3f4a5b61
Revises: 7c1d2e3f4a50
Create Date: 2026-11-22 07:40:00
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401 - used once the tables are filled in
from alembic import op  # noqa: F401

import medlabel.storage.db.base  # noqa: F401

revision = "8d2e3f4a5b61"
down_revision = "7c1d2e3f4a50"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
