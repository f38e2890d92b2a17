"""The web console: accounts, sessions, failed logins, audit log, canned replies, curated
answers.

Revision ID: 0003
Revises: 0002
Created: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _one_of(column: str, values: tuple[str, ...], name: str) -> sa.CheckConstraint:
    quoted = ", ".join(f"'{value}'" for value in values)
    return sa.CheckConstraint(f"{column} IN ({quoted})", name=op.f(name))


def _account_fk(table: str, column: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        ["web_accounts.id"],
        name=op.f(f"fk_{table}_{column}_web_accounts"),
        ondelete=ondelete,
    )


def upgrade() -> None:
    op.create_table(
        "web_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("telegram_id", sa.BigInteger(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        _timestamp("created_at"),
        _timestamp("last_login_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_accounts")),
        sa.UniqueConstraint("username", name=op.f("uq_web_accounts_username")),
        sa.UniqueConstraint("telegram_id", name=op.f("uq_web_accounts_telegram_id")),
        _one_of("role", ("counsellor", "admin"), "ck_web_accounts_role"),
    )
    op.create_table(
        "web_sessions",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        _timestamp("created_at"),
        _timestamp("expires_at"),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_web_sessions")),
        _account_fk("web_sessions", "account_id", "CASCADE"),
    )
    op.create_index(op.f("ix_web_sessions_account_id"), "web_sessions", ["account_id"])
    op.create_index(op.f("ix_web_sessions_expires_at"), "web_sessions", ["expires_at"])
    op.create_table(
        "web_login_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(160), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_login_attempts")),
    )
    op.create_index(
        op.f("ix_web_login_attempts_key_created_at"),
        "web_login_attempts",
        ["key", "created_at"],
    )
    op.create_table(
        "web_audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(200), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_audit")),
        _account_fk("web_audit", "account_id", "SET NULL"),
    )
    op.create_index(op.f("ix_web_audit_account_id"), "web_audit", ["account_id"])
    op.create_index(op.f("ix_web_audit_created_at"), "web_audit", ["created_at"])
    op.create_table(
        "canned_replies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("lang", sa.String(8), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canned_replies")),
        _account_fk("canned_replies", "created_by", "SET NULL"),
        _one_of("lang", ("zh", "en"), "ck_canned_replies_lang"),
    )
    op.create_table(
        "curated_answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("lang", sa.String(8), nullable=False),
        sa.Column("doc_id", sa.String(128), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("proposed_by", sa.Integer(), nullable=True),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        _timestamp("created_at"),
        _timestamp("decided_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_curated_answers")),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_curated_answers_ticket_id_tickets"),
            ondelete="SET NULL",
        ),
        _account_fk("curated_answers", "proposed_by", "SET NULL"),
        _account_fk("curated_answers", "decided_by", "SET NULL"),
        _one_of("status", ("proposed", "approved", "rejected"), "ck_curated_answers_status"),
        _one_of("lang", ("zh", "en"), "ck_curated_answers_lang"),
    )
    op.create_index(op.f("ix_curated_answers_ticket_id"), "curated_answers", ["ticket_id"])
    op.create_index(op.f("ix_curated_answers_status"), "curated_answers", ["status"])


def downgrade() -> None:
    for table in (
        "curated_answers",
        "canned_replies",
        "web_audit",
        "web_login_attempts",
        "web_sessions",
        "web_accounts",
    ):
        op.drop_table(table)
