"""The graduates' attachments on tickets: the Telegram file of each photo, voice message,
document, … a graduate sent while a ticket was open, so that the web console can show it.

Revision ID: 0004
Revises: 0003
Created: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = ("photo", "document", "voice", "video", "audio", "sticker", "animation", "video_note")
"""As ``bot.storage.models.ATTACHMENT_KINDS`` when this revision was written."""


def upgrade() -> None:
    quoted = ", ".join(f"'{kind}'" for kind in KINDS)
    op.create_table(
        "ticket_attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("file_id", sa.Text(), nullable=False),
        sa.Column("file_unique_id", sa.String(128), nullable=False),
        sa.Column("file_name", sa.Text(), nullable=True),
        sa.Column("mime_type", sa.String(255), nullable=True),
        sa.Column("file_size", sa.BigInteger(), nullable=True),
        sa.Column("caption", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_attachments")),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_attachments_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_ticket_attachments_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "chat_id", "message_id", name=op.f("uq_ticket_attachments_chat_id_message_id")
        ),
        sa.CheckConstraint(f"kind IN ({quoted})", name=op.f("ck_ticket_attachments_kind")),
    )
    op.create_index(op.f("ix_ticket_attachments_ticket_id"), "ticket_attachments", ["ticket_id"])
    op.create_index(
        op.f("ix_ticket_attachments_conversation_id"), "ticket_attachments", ["conversation_id"]
    )
    op.create_index(op.f("ix_ticket_attachments_created_at"), "ticket_attachments", ["created_at"])


def downgrade() -> None:
    op.drop_table("ticket_attachments")
