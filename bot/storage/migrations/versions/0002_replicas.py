"""Replicas share everything through the database: a lease per chat (its updates are
processed one at a time, whichever replica receives them), the chat of each processed
update, and the rate limit's count of messages per user and minute.

Revision ID: 0002
Revises: 0001
Created: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("processed_updates") as batch:
        batch.add_column(sa.Column("chat_id", sa.BigInteger(), nullable=True))
    op.create_index(op.f("ix_processed_updates_chat_id"), "processed_updates", ["chat_id"])
    op.create_table(
        "chat_leases",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("thread_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("update_id", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", "thread_id", name=op.f("pk_chat_leases")),
    )
    op.create_table(
        "rate_buckets",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("minute", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_rate_buckets_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "minute", name=op.f("pk_rate_buckets")),
    )


def downgrade() -> None:
    op.drop_table("rate_buckets")
    op.drop_table("chat_leases")
    op.drop_index(op.f("ix_processed_updates_chat_id"), table_name="processed_updates")
    with op.batch_alter_table("processed_updates") as batch:
        batch.drop_column("chat_id")
