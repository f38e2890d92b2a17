"""A curated answer becomes an answer card when an admin approves it (issue 13, item 1): the
card (both languages, variants, the quoted evidence) is kept with the proposal, as JSON.

Answers approved before this revision keep their row; without a card they are listed in the
console for an admin to complete (the other language and a quote) and are not served.

Revision ID: 0008
Revises: 0007
Created: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("curated_answers") as batch:
        batch.add_column(sa.Column("card", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("curated_answers") as batch:
        batch.drop_column("card")
