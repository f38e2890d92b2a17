"""Counsellors become one identity whichever front end they work in (issue 15, item 1): a
``counsellors`` table links an optional Telegram id and an optional console account, and a
ticket's holder is ``tickets.assignee_id`` (a counsellor row) instead of
``assignee_telegram_id`` (a Telegram id, minus a console account's id, or 0 for the
command line).

The data is kept: every holder of a ticket becomes a counsellor row — a Telegram id (linked
to the console account that carries it, if any), a console account (from its negative id,
with the account's Telegram id if it has one), or the command line (0: the single 'cli'
row, made here) — and every ticket points at its row. The trail's actor strings are not
touched. ``downgrade`` (PostgreSQL only) maps the rows back to the old ids.

Revision ID: 0009
Revises: 0008
Created: 2026-12-07
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

counsellors = sa.table(
    "counsellors",
    sa.column("id", sa.Integer()),
    sa.column("kind", sa.String()),
    sa.column("telegram_id", sa.BigInteger()),
    sa.column("account_id", sa.Integer()),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
tickets = sa.table(
    "tickets",
    sa.column("assignee_telegram_id", sa.BigInteger()),
    sa.column("assignee_id", sa.Integer()),
)
accounts = sa.table(
    "web_accounts", sa.column("id", sa.Integer()), sa.column("telegram_id", sa.BigInteger())
)


def _now(bind: sa.Connection) -> dt.datetime:
    now = dt.datetime.now(dt.UTC)
    return now.replace(tzinfo=None) if bind.dialect.name == "sqlite" else now  # as UTCDateTime


def _row(bind: sa.Connection, telegram_id: int | None, account_id: int | None) -> int:
    """The counsellor row for this Telegram id or account, made if there is none."""
    if account_id is not None:
        found = bind.execute(
            sa.select(counsellors.c.id).where(counsellors.c.account_id == account_id)
        ).scalar()
        if found is not None:
            return int(found)
    if telegram_id is not None:
        found = bind.execute(
            sa.select(counsellors.c.id).where(counsellors.c.telegram_id == telegram_id)
        ).scalar()
        if found is not None:
            return int(found)
    inserted = bind.execute(
        counsellors.insert()
        .values(
            kind="person", telegram_id=telegram_id, account_id=account_id, created_at=_now(bind)
        )
        .returning(counsellors.c.id)
    ).scalar_one()
    return int(inserted)


def upgrade() -> None:
    op.create_table(
        "counsellors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("telegram_id", sa.BigInteger(), nullable=True),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_counsellors")),
        sa.UniqueConstraint("telegram_id", name=op.f("uq_counsellors_telegram_id")),
        sa.UniqueConstraint("account_id", name=op.f("uq_counsellors_account_id")),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["web_accounts.id"],
            name=op.f("fk_counsellors_account_id_web_accounts"),
            ondelete="SET NULL",
        ),
        sa.CheckConstraint("kind IN ('person', 'cli')", name=op.f("ck_counsellors_kind")),
    )
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        # SQLite's own ALTERs, not a batch copy of ``tickets``: dropping the old table
        # with foreign keys on would cascade into ticket_events and the attachments
        op.execute(
            "ALTER TABLE tickets ADD COLUMN assignee_id INTEGER CONSTRAINT "
            "fk_tickets_assignee_id_counsellors REFERENCES counsellors (id)"
        )
    else:
        op.add_column("tickets", sa.Column("assignee_id", sa.Integer(), nullable=True))
        op.create_foreign_key(
            op.f("fk_tickets_assignee_id_counsellors"),
            "tickets",
            "counsellors",
            ["assignee_id"],
            ["id"],
        )
    op.create_index(op.f("ix_tickets_assignee_id"), "tickets", ["assignee_id"])
    cli_only = sa.text("kind = 'cli'")
    op.create_index(
        "uq_counsellors_cli",
        "counsellors",
        ["kind"],
        unique=True,
        sqlite_where=cli_only,
        postgresql_where=cli_only,
    )
    cli = bind.execute(
        counsellors.insert().values(kind="cli", created_at=_now(bind)).returning(counsellors.c.id)
    ).scalar_one()
    account_telegram: dict[int, int | None] = {
        account_id: telegram_id
        for account_id, telegram_id in bind.execute(
            sa.select(accounts.c.id, accounts.c.telegram_id)
        )
    }
    linked = {t: a for a, t in account_telegram.items() if t is not None}
    holders = bind.execute(
        sa.select(tickets.c.assignee_telegram_id)
        .where(tickets.c.assignee_telegram_id.is_not(None))
        .distinct()
    ).scalars()
    for old in list(holders):
        if old == 0:
            row = cli
        elif old > 0:
            row = _row(bind, old, linked.get(old))
        elif -old in account_telegram:
            row = _row(bind, account_telegram[-old], -old)
        else:  # an account that no longer exists: a person without a link
            row = _row(bind, None, None)
        bind.execute(
            tickets.update().where(tickets.c.assignee_telegram_id == old).values(assignee_id=row)
        )
    if bind.dialect.name == "sqlite":
        op.execute("ALTER TABLE tickets DROP COLUMN assignee_telegram_id")  # SQLite ≥ 3.35
    else:
        op.drop_column("tickets", "assignee_telegram_id")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        # SQLite cannot drop a column that carries a foreign key, and copying ``tickets``
        # would cascade into its events: restore the file backed up before the upgrade
        raise NotImplementedError("0009 cannot be undone on SQLite: restore a backup")
    op.add_column("tickets", sa.Column("assignee_telegram_id", sa.BigInteger(), nullable=True))
    rows = bind.execute(
        sa.select(
            counsellors.c.id,
            counsellors.c.kind,
            counsellors.c.telegram_id,
            counsellors.c.account_id,
        )
    ).all()
    for row_id, kind, telegram_id, account_id in rows:
        old = 0 if kind == "cli" else telegram_id if telegram_id is not None else -(account_id or 0)
        bind.execute(
            tickets.update().where(tickets.c.assignee_id == row_id).values(assignee_telegram_id=old)
        )
    op.drop_index(op.f("ix_tickets_assignee_id"), "tickets")
    op.drop_constraint(op.f("fk_tickets_assignee_id_counsellors"), "tickets", "foreignkey")
    op.drop_column("tickets", "assignee_id")
    op.drop_table("counsellors")
