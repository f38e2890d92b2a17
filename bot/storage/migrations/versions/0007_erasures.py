"""/forget also deletes the bot's copies of the graduate's messages in the counsellor group
(issue 14, item 6): what is still to delete in Telegram, per chat or forum topic, survives
a restart and a Telegram outage.

Revision ID: 0007
Revises: 0006
Created: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STEPS = ("messages", "topic", "rename", "done", "failed")
"""As ``bot.storage.models.ERASURE_STEPS`` when this revision was written."""


def upgrade() -> None:
    quoted = ", ".join(f"'{step}'" for step in STEPS)
    op.create_table(
        "erasures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("thread_id", sa.BigInteger(), nullable=True),
        sa.Column("ticket_number", sa.Integer(), nullable=False),
        sa.Column("message_ids", sa.JSON(), nullable=False),
        sa.Column("whole", sa.Boolean(), nullable=False),
        sa.Column("step", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasures")),
        sa.CheckConstraint(f"step IN ({quoted})", name=op.f("ck_erasures_step")),
    )
    op.create_index(
        op.f("ix_erasures_step_next_attempt_at"), "erasures", ["step", "next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_table("erasures")
