"""Telegram load benchmark: simulated graduates ask questions through the local fake Bot API
(real HTTP), and `gradguide serve` answers in a process of its own (long polling, SQLite,
the bundled knowledge base). Prints throughput, update-to-reply latency, lost and duplicated
replies — once with the rate limiter off, once with it on to show it holds the limit.

Usage:
    python bench/telegram_load.py [--graduates 500] [--questions 3] [--rate 50]

Arrivals are open-loop at ``--rate`` messages per second (graduates do not wait for each
other), so latency includes any queueing when the bot falls behind.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.kb.evaluation import percentile  # noqa: E402
from bot.kb.service import KnowledgeBase  # noqa: E402
from bot.prompts import Messages  # noqa: E402
from bot.settings import Settings  # noqa: E402
from tests.fakes.telegram_server import FakeTelegram  # noqa: E402

FORUM = -1001234567890


def questions() -> list[str]:
    """Self-contained questions from the evaluation set that the bot answers directly."""
    path = ROOT / "tests" / "eval" / "answers.jsonl"
    items = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [i["turns"][0] for i in items if i["expect"] == "answer" and len(i["turns"]) == 1]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(
    data: Path,
    graduates: int,
    per_graduate: int,
    rate: float,
    limit_per_minute: int,
) -> dict[str, Any]:
    """One run: the bot is `gradguide serve`, a process of its own (as in production);
    the fake Bot API and the simulated graduates live in this process."""
    pool = questions()
    with FakeTelegram(fail_on_violations=True) as tg:
        tg.forum(FORUM, "Counsellors")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "TELEGRAM_BOT_TOKEN": tg.token,
            "GRADGUIDE_TELEGRAM_API_URL": tg.base_url,
            "GRADGUIDE_DATA_DIR": str(data),
            "GRADGUIDE_DATABASE_URL": f"sqlite+aiosqlite:///{data / f'load-{limit_per_minute}.db'}",
            "GRADGUIDE_COUNSELLOR_CHAT_ID": str(FORUM),
            "GRADGUIDE_COUNSELLOR_IDS": "501",
            "GRADGUIDE_RATE_LIMIT_PER_MINUTE": str(limit_per_minute),
            "GRADGUIDE_OFFICE_HOURS": "daily 00:00-23:59",
            "GRADGUIDE_LOG_LEVEL": "WARNING",
            **{k: v for k, v in os.environ.items() if k == "GRADGUIDE_AGENT_THREADS"},
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            await tg.await_call("getUpdates", timeout=120)
            users = [tg.user(100_000 + n, f"G{n}", language_code="zh") for n in range(graduates)]
            sent_at: dict[tuple[int, int], float] = {}
            cpu_before = _cpu_seconds(process.pid)
            own_before = time.process_time()
            started = time.time()
            interval = 1.0 / rate
            order = [(u, q) for q in range(per_graduate) for u in range(graduates)]
            for n, (u, q) in enumerate(order):
                delay = started + n * interval - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent_at[(u, q)] = time.time()
                tg.send_text(users[u], pool[(u * per_graduate + q) % len(pool)])
            expected = graduates * per_graduate
            deadline = time.time() + 300
            while time.time() < deadline:
                replies = sum(1 for r in tg.sent if r.method == "sendMessage" and r.chat_id > 0)
                if replies >= expected:
                    break
                await asyncio.sleep(0.1)
            await tg.await_idle(timeout=60, quiet=1.0)
            finished = max((r.time for r in tg.sent), default=time.time())
            cpu = _cpu_seconds(process.pid) - cpu_before
            own_cpu = time.process_time() - own_before
        finally:
            process.terminate()
            _, stderr = process.communicate(timeout=60)
        if process.returncode not in (0, -15):
            print(stderr.decode(errors="replace")[-2000:], file=sys.stderr)
        violations = list(tg.violations)
        catalogue = Messages.load()
        limited_texts = tuple(
            catalogue.template("tg_rate_limited", lang).split("{")[0][:8] for lang in ("zh", "en")
        )
        by_chat: dict[int, list[float]] = {}
        limited = 0
        for record in tg.sent:
            if record.method != "sendMessage" or record.chat_id <= 0:
                continue
            if (record.text or "").startswith(limited_texts):
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
        "cpu_ms_per_reply": 1000 * cpu / replies if replies else float("nan"),
        "fake_cpu_percent": 100 * own_cpu / wall if wall else 0.0,
        "violations": len(violations),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--graduates", type=int, default=500)
    parser.add_argument("--questions", type=int, default=3)
    parser.add_argument("--rate", type=float, default=50.0, help="arrivals per second")
    parser.add_argument("--limit", type=int, default=2, help="per-minute limit for the second run")
    parser.add_argument(
        "--only-unlimited", action="store_true", help="skip the second run (limiter on)"
    )
    args = parser.parse_args()
    console = Console(width=120)
    os.environ.pop("GRADGUIDE_DATABASE_URL", None)
    with tempfile.TemporaryDirectory(prefix="gg-bench-telegram-") as tmp:
        data = Path(tmp)
        kb = KnowledgeBase.open(Settings(data_dir=data, chroma_url=None))
        kb.ingest([kb.settings.knowledge_dir])  # built once, before the bot starts
        del kb
        off = asyncio.run(run(data, args.graduates, args.questions, args.rate, 0))
        on = (
            None
            if args.only_unlimited
            else asyncio.run(run(data, args.graduates, args.questions, args.rate, args.limit))
        )
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
        "bot CPU %",
        "bot CPU ms/reply",
        "fake API CPU %",
        "spec violations",
    ):
        table.add_column(column, justify="right")
    for name, r in (("limiter off", off), (f"limiter {args.limit}/min", on)):
        if r is None:
            continue
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
            f"{r['cpu_ms_per_reply']:.1f}",
            f"{r['fake_cpu_percent']:.0f}",
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
