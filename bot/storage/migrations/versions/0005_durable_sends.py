"""Nothing in flight is lost to a dead process: in long polling an update is kept while it
is being processed (Telegram does not deliver it again), so that another run can resume
it; and the updates still being processed get a partial index to find them by.

(Answers and relays themselves need no new column: they are written to the outbox before
the first attempt to send them.)

Revision ID: 0005
Revises: 0004
Created: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROCESSING = sa.text("status = 'processing'")


def upgrade() -> None:
    with op.batch_alter_table("processed_updates") as batch:
        batch.add_column(sa.Column("payload", sa.JSON(none_as_null=True), nullable=True))
    op.create_index(
        op.f("ix_processed_updates_claimed_at"),
        "processed_updates",
        ["claimed_at"],
        sqlite_where=PROCESSING,
        postgresql_where=PROCESSING,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_processed_updates_claimed_at"), table_name="processed_updates")
    with op.batch_alter_table("processed_updates") as batch:
        batch.drop_column("payload")
