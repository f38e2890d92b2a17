"""The ``gradguide`` command line.

Usage:
    gradguide kb ingest PATH... [--id ID --title T --lang zh|en ...] [--force] [--replace]
    gradguide kb list [--json] | kb show ID [--json] | kb remove ID | kb rebuild | kb stats [--json]
    gradguide kb search "query" [--k N] [--lang zh|en] [--region R] [--mode M] [--json]
    gradguide chat
    gradguide ask "question" [--json] | ask --jsonl FILE|-
    gradguide eval tests/eval/answers.jsonl
    gradguide users add NAME --role counsellor|admin | users passwd NAME | users list
    gradguide web [--host H] [--port P]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bot.agent.agent import Agent
from bot.agent.curated import parse_cards
from bot.agent.evaluation import Scores, load_items
from bot.agent.evaluation import evaluate as evaluate_answers
from bot.agent.models import Conversation, Reply
from bot.cli_train import train_cards, train_guard, train_lead
from bot.datadir import DataDirProblem, check_data_dir, os_error_message
from bot.errors import GradGuideError
from bot.kb.ingest import IngestReport
from bot.kb.ingest import Progress as ProgressCallback
from bot.kb.models import Lang, Validity
from bot.kb.retriever import Hit
from bot.kb.service import KnowledgeBase
from bot.kb.upload import META_FIELDS
from bot.prompts import Messages
from bot.settings import Settings

META_OPTIONS = META_FIELDS
"""The ``kb ingest`` options that override a document's front matter."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradguide", description="GradGuide: employment guidance for graduates."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("chat", help="talk to GradGuide in the terminal")
    ask = commands.add_parser("ask", help="answer one question, or a JSON-lines file of them")
    ask.add_argument("question", nargs="?", default=None)
    ask.add_argument(
        "--jsonl", default=None, help="a file of {id, question, conversation_id?}, or -"
    )
    ask.add_argument("--json", action="store_true")
    ask.add_argument("--region", default=None)
    ask.add_argument("--lang", choices=["zh", "en"], default=None)
    evaluate = commands.add_parser("eval", help="score answers against an evaluation file")
    evaluate.add_argument("file", type=Path)
    evaluate.add_argument("--show-failures", action="store_true")

    kb = commands.add_parser("kb", help="manage the knowledge base").add_subparsers(
        dest="kb_command", required=True
    )
    ingest = kb.add_parser("ingest", help="add or update documents from files and folders")
    ingest.add_argument("paths", nargs="+", type=Path)
    ingest.add_argument("--force", action="store_true", help="re-embed even if unchanged")
    ingest.add_argument(
        "--replace",
        action="store_true",
        help="a file may replace the document that has its id but came from another file",
    )
    meta = ingest.add_argument_group("metadata (overrides front matter)")
    for name in META_OPTIONS:
        meta.add_argument("--" + name.replace("_", "-"), dest=name, default=None)

    for name, helptext in (("list", "list documents"), ("stats", "index statistics")):
        sub = kb.add_parser(name, help=helptext)
        sub.add_argument("--json", action="store_true")
    show = kb.add_parser("show", help="a document's metadata and chunks")
    show.add_argument("doc_id")
    show.add_argument("--json", action="store_true")
    remove = kb.add_parser("remove", help="remove a document from the index")
    remove.add_argument("doc_id")
    kb.add_parser("rebuild", help="re-read and re-embed every source")

    search = kb.add_parser("search", help="hit-test retrieval: ranked chunks with scores")
    search.add_argument("query")
    search.add_argument("--k", type=int, default=5)
    search.add_argument("--lang", choices=["zh", "en"], default=None)
    search.add_argument("--lang-only", action="store_true", help="only documents in --lang")
    search.add_argument("--region", default=None)
    search.add_argument("--mode", choices=["hybrid", "dense", "lexical"], default="hybrid")
    search.add_argument(
        "--include-expired", action="store_true", help="also expired / not yet effective"
    )
    search.add_argument("--json", action="store_true")

    train_guard = commands.add_parser(
        "train-guard",
        help="fit the message check (crisis, person, scope) to the labelled messages",
    )
    train_guard.add_argument("--data", type=Path, default=None, help="default: tests/eval/guard")
    train_guard.add_argument("--out", type=Path, default=None, help="default: the shipped model")
    train_guard.add_argument(
        "--check", action="store_true", help="fit and report, but write nothing"
    )
    train_cards = commands.add_parser(
        "train-cards",
        help="embed the answer cards and fit when a card answers (needs the [train] extra)",
    )
    train_cards.add_argument(
        "--check", action="store_true", help="fit and report, but write nothing"
    )
    train_lead = commands.add_parser(
        "train-lead",
        help="fit which sentence of a document answers, on the answer cards ([train] extra)",
    )
    train_lead.add_argument(
        "--check", action="store_true", help="fit and report, but write nothing"
    )
    commands.add_parser(
        "check",
        help="check the set-up: settings, data, database, index, console, Telegram (exit 1 on ✗)",
    )
    commands.add_parser("serve", help="run the Telegram bot (polling, or webhook if configured)")
    handoffs = commands.add_parser(
        "handoffs", help="counsellor tickets without Telegram (replies go through the bot)"
    ).add_subparsers(dest="handoffs_command", required=True)
    listing = handoffs.add_parser("list", help="open tickets (--all: every ticket)")
    listing.add_argument("--all", action="store_true")
    listing.add_argument("--limit", type=int, default=50)
    for name, helptext in (
        ("show", "a ticket's transcript, draft and audit trail"),
        ("resolve", "close a ticket; the graduate is asked for a rating"),
    ):
        handoffs.add_parser(name, help=helptext).add_argument("id", type=int)
    reply = handoffs.add_parser("reply", help="answer the graduate through the bot")
    reply.add_argument("id", type=int)
    reply.add_argument("text")

    from bot.web.users import add_parser as add_users_parser

    add_users_parser(commands)
    web = commands.add_parser("web", help="run the web console for counsellors and admins")
    web.add_argument("--host", default=None, help="default: GRADGUIDE_WEB_HOST")
    web.add_argument("--port", type=int, default=None, help="default: GRADGUIDE_WEB_PORT")
    return parser


DATA_DIR_COMMANDS = frozenset({"kb", "web", "serve", "chat", "ask", "eval"})
"""Commands that keep an index, caches, uploads or a database under GRADGUIDE_DATA_DIR: it
is checked before they start (``bot.datadir``)."""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Console(soft_wrap=True)
    err = Console(stderr=True, soft_wrap=True)
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        err.print(f"[red]configuration error:[/] {first['loc']}: {first['msg']}")
        return 2
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "chromadb", "alembic"):  # alembic: INFO per migration step
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.root.level))
    if args.command in DATA_DIR_COMMANDS:
        checked = check_data_dir(settings.data_dir)
        if checked.problem is not DataDirProblem.NONE:
            err.print(f"[red]error:[/] {escape(checked.message(Messages.load()))}")
            return 2
    try:
        if args.command == "chat":
            return _chat(settings, out, err)
        if args.command == "ask":
            return _ask(args, settings, out, err)
        if args.command == "eval":
            return _eval(args, settings, out, err)
        if args.command == "train-guard":
            return train_guard(args, settings, out)
        if args.command == "train-cards":
            return train_cards(args, settings, out, err)
        if args.command == "train-lead":
            return train_lead(args, settings, out, err)
        if args.command == "check":
            return asyncio.run(_check(settings, out))
        if args.command == "serve":
            from bot.root import serve

            serve(settings)
            return 0
        if args.command == "handoffs":
            from bot.channels.telegram import console
            from bot.root import handoff_service

            command = args.handoffs_command
            return asyncio.run(console.run(settings, command, args, out, handoff_service))
        if args.command == "users":
            from bot.web import users

            return asyncio.run(users.run(settings, args, out))
        if args.command == "web":
            from bot.root import web_services
            from bot.web.app import serve as serve_web

            overrides = {"web_host": args.host, "web_port": args.port}
            settings = settings.model_copy(update={k: v for k, v in overrides.items() if v})
            serve_web(web_services(settings))
            return 0
        return _kb(args, settings, out, err)
    except GradGuideError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        return 2
    except OSError as exc:
        if exc.filename is None:  # not about a file or directory: a bug, shown as one
            raise
        logging.getLogger(__name__).debug("file system error", exc_info=True)
        err.print(f"[red]error:[/] {escape(os_error_message(exc, Messages.load()))}")
        return 2
    except KeyboardInterrupt:
        return 130


async def _check(settings: Settings, out: Console) -> int:
    """``gradguide check``: a table of ✓ / ! / ✗ with the fix for each; 1 if any ✗."""
    # imported here, as for serve: the database layer and python-telegram-bot cost every
    # other command (ask, chat) 0.3 s to import
    from bot.channels.telegram.check import check_telegram
    from bot.check import (
        check_console,
        check_data_directory,
        check_database,
        check_index,
        check_settings,
        failed,
    )
    from bot.check import table as check_table

    findings = check_settings(settings)
    findings.append(check_data_directory(settings))
    findings.append(await check_database(settings))
    findings.append(check_index(settings))
    findings.append(check_console(settings))
    findings.extend(await check_telegram(settings))
    out.print(check_table(findings))
    return 1 if failed(findings) else 0


def _open(settings: Settings, err: Console, lang: Lang = "en") -> KnowledgeBase:
    kb = KnowledgeBase.open(settings)
    if not kb.documents():
        err.print(Messages.load().get("building_index", lang, path=settings.knowledge_dir))
        report = _with_progress(
            err, len(kb.ingestor.expand([settings.knowledge_dir])), kb.ensure_built
        )
        if report is not None:
            _print_report(report, err)
    return kb


def _with_progress(
    console: Console, total: int, work: Callable[[ProgressCallback], IngestReport | None]
) -> IngestReport | None:
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[current]}"),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task("Ingesting", total=total, current="")

        def advance(path: str) -> None:
            progress.update(task, advance=1, current=Path(path).name)

        return work(advance)


def _print_report(report: IngestReport, console: Console) -> None:
    table = Table(title="Ingest summary")
    for column in ("added", "updated", "unchanged", "failed"):
        table.add_column(column, justify="right")
    table.add_row(*(str(report.count(s)) for s in ("added", "updated", "unchanged", "failed")))
    console.print(table)
    if report.failed:
        console.print("[bold red]Failed files[/]")
        messages = Messages.load()
        for outcome in report.failed:
            error = outcome.error or ""
            if outcome.conflict is not None:  # the document it would replace, by name
                c = outcome.conflict
                error = messages.get(
                    "kb_id_taken", "en", doc_id=c.doc_id, title=c.title, source=c.source
                )
            console.print(f"  ✗ {escape(outcome.path)}: {escape(error)}")
    for outcome in report.outcomes:
        if outcome.derived and outcome.status in ("added", "updated"):
            shown = ", ".join(f"{name} {value!r}" for name, value in outcome.derived.items())
            console.print(f"  [dim]{escape(outcome.path)}: derived {escape(shown)}[/]")
    skipped = [o for o in report.outcomes if o.status == "skipped"]
    if skipped:
        console.print("[bold]Skipped files[/]")
        for outcome in skipped:
            console.print(f"  - {escape(outcome.path)}: {escape(outcome.error or '')}")


def _kb(args: argparse.Namespace, settings: Settings, out: Console, err: Console) -> int:
    command = args.kb_command
    if command == "ingest":
        kb = KnowledgeBase.open(settings)
        overrides = {name: getattr(args, name) for name in META_OPTIONS}
        total = len(kb.ingestor.expand([p for p in args.paths if p.exists()]))
        report = _with_progress(
            err,
            total,
            lambda advance: kb.ingest(
                args.paths,
                overrides,
                force=args.force,
                replace=args.replace,
                on_file_done=advance,
            ),
        )
        assert report is not None
        _print_report(report, out)
        return 1 if report.failed else 0
    if command == "rebuild":
        kb = KnowledgeBase.open(settings)
        total = len(kb.ingestor.expand(kb.rebuild_sources()))
        report = _with_progress(err, total, kb.rebuild)
        assert report is not None
        _print_report(report, out)
        return 1 if report.failed else 0

    # like `ask`, every command that reads the index builds it on first use
    kb = _open(settings, err)
    if command == "list":
        return _list(kb, args.json, out)
    if command == "show":
        return _show(kb, args.doc_id, args.json, out)
    if command == "remove":
        doc = kb.remove(args.doc_id)
        out.print(f"Removed {escape(doc.meta.id)} ({escape(doc.meta.title)}).")
        return 0
    if command == "stats":
        stats = kb.stats()
        if args.json:
            out.print_json(stats.model_dump_json())
        else:
            table = Table(title="Knowledge base", show_header=False)
            for key, value in stats.model_dump().items():
                table.add_row(key, escape(str(value)))
            out.print(table)
        return 0
    if command == "search":
        hits = kb.search(
            args.query,
            k=args.k,
            lang=args.lang,
            lang_only=args.lang_only,
            region=args.region,
            mode=args.mode,
            include_inactive=args.include_expired,
        )
        _print_hits(hits, args.json, out)
        return 0
    raise AssertionError(command)  # pragma: no cover - argparse enforces the choices


def _validity_flag(validity: Validity) -> str:
    return "" if validity is Validity.ACTIVE else validity.value.upper()


def _list(kb: KnowledgeBase, as_json: bool, out: Console) -> int:
    docs = kb.documents()
    if as_json:
        rows: list[dict[str, Any]] = [
            {
                **d.meta.model_dump(mode="json"),
                "validity": kb.validity(d).value,
                "chunks": d.chunk_count,
                "source": d.source,
                "ingested_at": d.ingested_at.isoformat(),
            }
            for d in docs
        ]
        out.print(json.dumps(rows, ensure_ascii=False, indent=2), markup=False)
        return 0
    table = Table(title=f"{len(docs)} documents")
    for column in ("id", "lang", "region", "issued", "chunks", "validity", "title"):
        table.add_column(column)
    for d in docs:
        flag = _validity_flag(kb.validity(d))
        table.add_row(
            escape(d.meta.id),
            d.meta.lang,
            escape(d.meta.region),
            d.meta.issued.isoformat(),
            str(d.chunk_count),
            f"[yellow]{flag}[/]" if flag else "active",
            escape(d.meta.title),
        )
    out.print(table)
    return 0


def _show(kb: KnowledgeBase, doc_id: str, as_json: bool, out: Console) -> int:
    doc = kb.document(doc_id)
    chunks = kb.chunks_of(doc_id)
    if as_json:
        payload = {
            **doc.meta.model_dump(mode="json"),
            "validity": kb.validity(doc).value,
            "content_hash": doc.content_hash,
            "source": doc.source,
            "ingested_at": doc.ingested_at.isoformat(),
            "admin_overrides": kb.overrides(doc_id),
            "chunks": [{"heading": h, "text": t} for h, t in chunks],
        }
        out.print(json.dumps(payload, ensure_ascii=False, indent=2), markup=False)
        return 0
    table = Table(show_header=False, title=escape(doc.meta.title))
    for key, value in doc.meta.model_dump(mode="json").items():
        table.add_row(key, escape(str(value)))
    table.add_row("validity", kb.validity(doc).value)
    table.add_row("source", escape(doc.source))
    table.add_row("ingested_at", doc.ingested_at.isoformat(timespec="seconds"))
    if overrides := kb.overrides(doc_id):  # an admin's changes, kept through rebuilds
        table.add_row("admin_overrides", escape(json.dumps(overrides, ensure_ascii=False)))
    out.print(table)
    for number, (heading, text) in enumerate(chunks, start=1):
        out.print(f"\n[bold]#{number} {escape(heading)}[/]\n{escape(text)}")
    return 0


def hit_json(hit: Hit, rank: int) -> dict[str, Any]:
    meta = hit.doc.meta
    return {
        "rank": rank,
        "score": round(hit.score, 6),
        "found_by": hit.found_by,
        "dense_rank": hit.dense_rank,
        "dense_score": None if hit.dense_score is None else round(hit.dense_score, 4),
        "lexical_rank": hit.lexical_rank,
        "lexical_score": None if hit.lexical_score is None else round(hit.lexical_score, 4),
        "doc_id": meta.id,
        "title": meta.title,
        "lang": meta.lang,
        "region": meta.region,
        "authority": meta.authority,
        "doc_number": meta.doc_number,
        "heading": hit.heading,
        "text": hit.text,
    }


def _print_hits(hits: list[Hit], as_json: bool, out: Console) -> None:
    if as_json:
        rows = [hit_json(h, r) for r, h in enumerate(hits, start=1)]
        out.print(json.dumps(rows, ensure_ascii=False, indent=2), markup=False)
        return
    if not hits:
        out.print("No matching passages.")
        return
    table = Table(show_lines=True)
    for column in ("#", "score", "found by", "document", "passage"):
        table.add_column(column)
    for rank, hit in enumerate(hits, start=1):
        ranks = []
        if hit.dense_rank is not None:
            ranks.append(f"dense #{hit.dense_rank} ({hit.dense_score:.3f})")
        if hit.lexical_rank is not None:
            ranks.append(f"lexical #{hit.lexical_rank} ({hit.lexical_score:.2f})")
        snippet = hit.text if len(hit.text) <= 240 else hit.text[:240] + "…"
        table.add_row(
            str(rank),
            f"{hit.score:.4f}",
            "\n".join(ranks),
            f"{escape(hit.doc_id)}\n[dim]{escape(hit.heading)}[/]",
            escape(snippet),
        )
    out.print(table)


def reply_json(reply: Reply, item_id: str | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {} if item_id is None else {"id": item_id}
    payload.update(
        {
            "answer": reply.text,
            "lang": reply.lang,
            "intent": reply.intent.value,
            "citations": [
                {
                    "doc_id": c.doc_id,
                    "title": c.title,
                    "authority": c.authority,
                    "doc_number": c.doc_number,
                    "source_url": c.source_url,
                    "excerpt": c.excerpt,
                }
                for c in reply.citations
            ],
            "handoff": reply.handoff,
            "handoff_reason": reply.handoff_reason.value if reply.handoff_reason else None,
            "confidence": reply.confidence,
            "latency_ms": reply.latency_ms,
        }
    )
    return payload


def _agent(settings: Settings, err: Console, *, prefetch: bool = False) -> Agent:
    """The agent, with the curated answers approved in the console (the terminal reads the
    bot's database: what a graduate gets in Telegram, they get here). ``prefetch``: a new
    process about to answer loads its models in the background while the agent is built
    (``KnowledgeBase.prefetch``)."""
    kb = _open(settings, err)
    if prefetch:
        kb.prefetch()
    agent = Agent(kb, settings)
    approved = _approved_cards(settings, err)
    if approved:
        agent.use_curated(parse_cards(approved))
    return agent


APPROVED_CARDS = (
    "SELECT id, card FROM curated_answers WHERE status = 'approved' AND card IS NOT NULL"
)
"""``ConsoleStore.approved_cards``, read with the standard library from a SQLite database:
``gradguide ask`` stays under two seconds without loading SQLAlchemy."""


def _approved_cards(settings: Settings, err: Console) -> list[tuple[int, str]]:
    """The approved curated answers' cards (JSON), by proposal number; none when there is
    no database yet or it predates them."""
    url = settings.database_url_or_default
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1].split("?", 1)[0]
        if not path or path == ":memory:" or not Path(path).is_file():
            return []
        try:
            uri = f"{Path(path).resolve().as_uri()}?mode=ro"
            with closing(sqlite3.connect(uri, uri=True)) as connection:
                rows = connection.execute(APPROVED_CARDS).fetchall()
        except sqlite3.Error:  # created before curated answers became cards: none yet
            return []
        return [(int(number), str(card)) for number, card in rows]
    from bot.storage import Database, Store
    from bot.storage.console_store import ConsoleStore

    async def read() -> list[tuple[int, str]]:
        database = Database.from_settings(settings)
        try:
            return await ConsoleStore(Store(database)).approved_cards()
        finally:
            await database.dispose()

    try:
        return asyncio.run(read())
    except GradGuideError as exc:
        err.print(f"[yellow]curated answers not used:[/] {escape(str(exc))}")
        return []


def _ask(args: argparse.Namespace, settings: Settings, out: Console, err: Console) -> int:
    if (args.question is None) == (args.jsonl is None):
        err.print("[red]error:[/] give a question or --jsonl FILE (or - for standard input)")
        return 2
    agent = _agent(settings, err, prefetch=True)
    if args.question is not None:
        conversation = Conversation(region=args.region, lang=args.lang)
        reply = agent.reply(conversation, args.question)
        if args.json:
            out.print(json.dumps(reply_json(reply), ensure_ascii=False), markup=False)
        else:
            _print_reply(reply, out)
        return 0
    source = sys.stdin if args.jsonl == "-" else open(args.jsonl, encoding="utf-8")  # noqa: SIM115
    conversations: dict[str, Conversation] = {}
    failures = 0
    with source:
        for number, line in enumerate(source, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                item_id, question = str(row["id"]), str(row["question"])
            except (ValueError, KeyError, TypeError) as exc:
                err.print(f'[red]line {number}:[/] expected {{"id", "question"}} ({exc})')
                failures += 1
                continue
            key = str(row.get("conversation_id") or f"__line{number}")
            conversation = conversations.setdefault(
                key, Conversation(id=key, region=args.region, lang=args.lang)
            )
            reply = agent.reply(conversation, question)
            print(json.dumps(reply_json(reply, item_id), ensure_ascii=False), flush=True)
    return 1 if failures else 0


def _print_reply(reply: Reply, out: Console) -> None:
    from bot.channels.terminal.render import print_reply

    print_reply(reply, out)


def _chat(settings: Settings, out: Console, err: Console) -> int:
    from bot.root import chat

    return chat(settings, _agent(settings, err, prefetch=True), out)


def answer_quality_table(rows: list[Scores], title: str) -> Table:
    """The evaluation scores as a table (also printed by bench/answer.py)."""
    grid = Table(title=title)
    columns = (
        "group",
        "n",
        "key facts",
        "lead",
        "cited",
        "handoff P",
        "handoff R",
        "decline",
        "behaviour",
        "made by",
    )
    for column in columns:
        grid.add_column(column, justify="left" if column == "group" else "right")

    def pct(value: float | None) -> str:
        return "—" if value is None else f"{value:.3f}"

    for row in rows:
        grid.add_row(
            row.group,
            str(row.n),
            pct(row.key_fact_accuracy),
            pct(row.lead_accuracy),
            pct(row.citation_rate),
            pct(row.handoff_precision),
            pct(row.handoff_recall),
            pct(row.decline_accuracy),
            pct(row.behaviour_accuracy),
            " ".join(f"{name} {count}" for name, count in row.composers.items()),
        )
    return grid


def _eval(args: argparse.Namespace, settings: Settings, out: Console, err: Console) -> int:
    items = load_items(args.file)
    results, table = evaluate_answers(_agent(settings, err), items)
    grid = answer_quality_table(table, f"Answer quality — {len(items)} items ({args.file.name})")
    out.print(grid)
    out.print(f"answers asserting policy facts without a citation: {table[0].uncited_answers}")
    if args.show_failures:
        for result in results:
            if not result.correct:
                out.print(
                    f"[red]{result.item.id}[/] ({result.item.expect}) "
                    f"{escape(result.item.turns[-1][:60])} → {result.reply.intent.value}: "
                    f"{escape(result.reply.text[:120])}"
                )
    return 0


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
