"""Telegram load benchmark: simulated graduates ask questions through the local fake Bot API
(real HTTP), the real python-telegram-bot application answers (long polling, SQLite, the
bundled knowledge base). Prints throughput, update-to-reply latency, lost and duplicated
replies — once with the rate limiter off, once with it on to show it holds the limit.

Usage:
    python bench/telegram_load.py [--graduates 500] [--questions 3] [--rate 80]

Arrivals are open-loop at ``--rate`` messages per second (graduates do not wait for each
other), so latency includes any queueing when the bot falls behind.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.agent.agent import Agent  # noqa: E402
from bot.channels.telegram.app import Services, build_application  # noqa: E402
from bot.kb.evaluation import percentile  # noqa: E402
from bot.kb.service import KnowledgeBase  # noqa: E402
from bot.prompts import Messages  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.storage import Database, Store  # noqa: E402
from tests.fakes.telegram_server import FakeTelegram  # noqa: E402

FORUM = -1001234567890


def questions() -> list[str]:
    """Self-contained questions from the evaluation set that the bot answers directly."""
    path = ROOT / "tests" / "eval" / "answers.jsonl"
    items = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [i["turns"][0] for i in items if i["expect"] == "answer" and len(i["turns"]) == 1]


async def run(
    kb: KnowledgeBase,
    data: Path,
    graduates: int,
    per_graduate: int,
    rate: float,
    limit_per_minute: int,
) -> dict[str, Any]:
    pool = questions()
    with FakeTelegram(fail_on_violations=True) as tg:
        tg.forum(FORUM, "Counsellors")
        settings = Settings(
            data_dir=data,
            database_url=f"sqlite+aiosqlite:///{data / f'load-{limit_per_minute}.db'}",
            telegram_bot_token=tg.token,
            telegram_api_url=tg.base_url,
            counsellor_chat_id=FORUM,
            counsellor_ids=[501],
            rate_limit_per_minute=limit_per_minute,
            office_hours="daily 00:00-23:59",
        )
        database = Database(settings.database_url_or_default)
        await database.migrate()
        services = Services(
            settings=settings,
            kb=kb,
            agent=Agent(kb, kb.settings),
            store=Store(database),
            messages=Messages.load(),
        )
        application = build_application(services)
        users = [tg.user(100_000 + n, f"G{n}", language_code="zh") for n in range(graduates)]
        sent_at: dict[tuple[int, int], float] = {}
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        async with application:
            await application.start()
            assert application.updater is not None
            await application.updater.start_polling(poll_interval=0.0, timeout=1)
            started = time.time()
            interval = 1.0 / rate
            order = [(u, q) for q in range(per_graduate) for u in range(graduates)]
            for n, (u, q) in enumerate(order):
                due = started + n * interval
                delay = due - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                text = pool[(u * per_graduate + q) % len(pool)]
                sent_at[(u, q)] = time.time()
                tg.send_text(users[u], text)
            expected = graduates * per_graduate
            deadline = time.time() + 120
            while time.time() < deadline:
                replies = sum(1 for r in tg.sent if r.method == "sendMessage" and r.chat_id > 0)
                if replies >= expected:
                    break
                await asyncio.sleep(0.2)
            await tg.await_idle(timeout=30, quiet=0.5)
            finished = time.time()
            await application.updater.stop()
            await application.stop()
        services.agent_pool.shutdown()
        await database.dispose()
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        violations = list(tg.violations)
        by_chat: dict[int, list[float]] = {}
        limited_text = Messages.load().template("tg_rate_limited", "zh").split("{")[0][:8]
        limited = 0
        for record in tg.sent:
            if record.method != "sendMessage" or record.chat_id <= 0:
                continue
            if limited_text and (record.text or "").startswith(limited_text):
                limited += 1
            by_chat.setdefault(record.chat_id, []).append(record.time)
    latencies: list[float] = []
    lost = duplicated = 0
    for u in range(graduates):
        times = sorted(by_chat.get(100_000 + u, []))
        lost += max(0, per_graduate - len(times))
        duplicated += max(0, len(times) - per_graduate)
        for q, reply_time in zip(range(per_graduate), times, strict=False):
            latencies.append(reply_time - sent_at[(u, q)])
    replies = sum(len(v) for v in by_chat.values())
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    wall = finished - started
    return {
        "messages": graduates * per_graduate,
        "replies": replies,
        "throughput": replies / wall if wall else 0.0,
        "p50": percentile(latencies, 50) if latencies else float("nan"),
        "p95": percentile(latencies, 95) if latencies else float("nan"),
        "lost": lost,
        "duplicated": duplicated,
        "rate_limited": limited,
        "cpu_percent": 100 * cpu / wall if wall else 0.0,
        "violations": len(violations),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--graduates", type=int, default=500)
    parser.add_argument("--questions", type=int, default=3)
    parser.add_argument("--rate", type=float, default=80.0, help="arrivals per second")
    parser.add_argument("--limit", type=int, default=2, help="per-minute limit for the second run")
    args = parser.parse_args()
    console = Console(width=120)
    os.environ.pop("GRADGUIDE_DATABASE_URL", None)
    with tempfile.TemporaryDirectory(prefix="gg-bench-telegram-") as tmp:
        data = Path(tmp)
        settings = Settings(data_dir=data / "kb", chroma_url=None)
        kb = KnowledgeBase.open(settings)
        kb.ingest([settings.knowledge_dir])
        off = asyncio.run(run(kb, data, args.graduates, args.questions, args.rate, 0))
        on = asyncio.run(run(kb, data, args.graduates, args.questions, args.rate, args.limit))
    table = Table(
        title=f"Telegram load — {args.graduates} graduates × {args.questions} questions, "
        f"arrivals {args.rate:g}/s, fake Bot API over HTTP, SQLite, polling"
    )
    for column in (
        "run",
        "messages",
        "replies",
        "replies/s",
        "p50 s",
        "p95 s",
        "lost",
        "duplicated",
        "rate-limited",
        "CPU %",
        "spec violations",
    ):
        table.add_column(column, justify="right")
    for name, r in (("limiter off", off), (f"limiter {args.limit}/min", on)):
        table.add_row(
            name,
            str(r["messages"]),
            str(r["replies"]),
            f"{r['throughput']:.1f}",
            f"{r['p50']:.3f}",
            f"{r['p95']:.3f}",
            str(r["lost"]),
            str(r["duplicated"]),
            str(r["rate_limited"]),
            f"{r['cpu_percent']:.0f}",
            str(r["violations"]),
        )
    console.print(table)
    console.print(
        "With the limiter on, every graduate's messages beyond the limit get the "
        "rate-limited reply (still one reply per message: nothing lost, nothing doubled)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
