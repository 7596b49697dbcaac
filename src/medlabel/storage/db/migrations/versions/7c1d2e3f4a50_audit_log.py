"""audit_log

Revision ID: 7c1d2e3f4a50
Revises: 6ba29d3ba8e9
Create Date: 2026-11-22 07:40:00
"""

from __future__ import annotations

import sqlalchemy as sa  # noqa: F401 - used once the tables are filled in
from alembic import op  # noqa: F401

import medlabel.storage.db.base  # noqa: F401

revision = "7c1d2e3f4a50"
down_revision = "6ba29d3ba8e9"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
