"""Scale-out load benchmark: simulated graduates write to the bot through the fake Bot API,
which delivers the updates as webhooks round-robin over N ``gradguide serve`` replicas
(``tests/cluster.py``: each replica its own process, one PostgreSQL server, one Chroma
server, all on this machine). Prints throughput, update-to-reply latency (p50/p95/p99),
lost and duplicated replies, and the CPU used by each replica, PostgreSQL and Chroma — once
per replica count, so two replicas can be compared with one.

Usage:
    python bench/scale.py [--graduates 2000] [--messages 3] [--rate 20] [--replicas 1,2]

Arrivals are open-loop at ``--rate`` messages per second (graduates do not wait for the
bot), so latency includes any queueing when the replicas fall behind. A fraction of the
graduates (``--handoff``, 5 %) ask for a counsellor: their second message is ``/human``
(its reply is the queue notice) and their third is relayed into the ticket's forum topic
(its "reply" is the copy in the topic). Everyone else asks self-contained questions from
the evaluation set. A message is lost with no reply (within ``--drain`` seconds of the
last one sent) and duplicated with more than one. ``gradguide serve`` warms its agent up
before it takes updates; each replica also answers two questions outside the measurement
(``--no-warmup`` skips them). The machine's load average is printed before each run:
other work on the machine shows up in the latencies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.kb.evaluation import percentile  # noqa: E402
from bot.prompts import Messages  # noqa: E402
from tests.cluster import FORUM, Cluster  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
KINDS = ("answer", "queue notice", "relay")


def questions() -> list[str]:
    """Self-contained questions from the evaluation set that the bot answers directly."""
    path = ROOT / "tests" / "eval" / "answers.jsonl"
    items = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [i["turns"][0] for i in items if i["expect"] == "answer" and len(i["turns"]) == 1]


def wants_counsellor(graduate: int, fraction: float) -> bool:
    """Exactly ``floor(n * fraction)`` of the first n graduates, spread evenly."""
    return int((graduate + 1) * fraction) > int(graduate * fraction)


class BenchCluster(Cluster):
    """The test cluster, with extra environment variables for the replicas (``--env``, e.g.
    ``OPENBLAS_NUM_THREADS=1`` to try a deployment setting without editing the bot)."""

    def __init__(self, root: Path, replicas: int, extra: dict[str, str], **settings: str) -> None:
        super().__init__(root, replicas=replicas, **settings)
        self.extra = extra

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.extra}


# -- CPU from /proc ----------------------------------------------------------------------


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int(_stat(int(entry.name))[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(parent, []).append(int(entry.name))
    return tree


def tree_cpu(pid: int, tree: dict[int, list[int]] | None = None) -> float:
    """CPU seconds (user + system) of a process and its descendants: the live ones, plus
    the children that exited and were waited for (cutime + cstime) — so PostgreSQL's
    backends count even when they come and go."""
    tree = _children() if tree is None else tree
    total = 0.0
    try:
        fields = _stat(pid)
    except OSError:
        return 0.0
    total += sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICK
    for child in tree.get(pid, []):
        total += tree_cpu(child, tree)
    return total


async def pg_transactions(cluster: Cluster) -> int:
    """Transactions committed or rolled back in the cluster's database so far (-1: unknown)."""
    import asyncpg

    try:
        return await _pg_transactions(cluster, asyncpg)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"PostgreSQL statistics not read: {exc}", file=sys.stderr)
        return -1


async def _pg_transactions(cluster: Cluster, asyncpg: Any) -> int:
    connection = await asyncpg.connect(
        host="127.0.0.1", port=cluster.postgres.port, user="postgres", database="postgres"
    )
    try:
        await connection.execute("SELECT pg_stat_clear_snapshot()")
        value = await connection.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'postgres'"
        )
    finally:
        await connection.close()
    return int(value)


def postmaster_pid(cluster: Cluster) -> int:
    """The PostgreSQL server of this cluster (from its data directory's postmaster.pid)."""
    pidfile = cluster.postgres.path / "data" / "postmaster.pid"
    return int(pidfile.read_text().split()[0])


@dataclass
class CpuProbe:
    """CPU seconds of each part of the cluster, and of this process (the fake Bot API and
    the simulated graduates)."""

    pids: dict[str, int]
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)

    def _sample(self) -> dict[str, float]:
        tree = _children()
        sample = {name: tree_cpu(pid, tree) for name, pid in self.pids.items()}
        sample["bench"] = time.process_time()
        return sample

    def start(self) -> None:
        self.before = self._sample()

    def stop(self) -> None:
        self.after = self._sample()

    def percent(self, name: str, wall: float) -> float:
        return 100 * (self.after[name] - self.before[name]) / wall if wall else 0.0


# -- one run -----------------------------------------------------------------------------


@dataclass
class Outcome:
    """What happened to one message."""

    kind: str
    latency: float | None
    replies: int
    delivery: float | None = None
    """Update created → the replica answered its webhook POST (which it does once the
    update is processed: the reply is sent before)."""


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def prefixes(catalogue: Messages, key: str) -> tuple[str, ...]:
    return tuple(catalogue.template(key, lang).split("{")[0][:12] for lang in ("zh", "en"))


async def warm_up(cluster: Cluster) -> None:
    """Two questions per replica (round-robin: each gets two) from users outside the
    measurement, answered before the clock starts (a replica has warmed its agent up
    before it took updates: these check the whole path end to end)."""
    tg = cluster.tg
    pool = questions()
    count = 2 * len(cluster.replicas)
    users = [tg.user(90_000 + n, f"W{n}", language_code="zh") for n in range(count)]
    for n, user in enumerate(users):
        tg.send_text(user, pool[n % len(pool)])
    for user in users:
        await tg.await_for(method="sendMessage", chat=user, timeout=180)
    await tg.await_idle(timeout=60, quiet=1.0)


async def drive(
    cluster: Cluster,
    graduates: int,
    per_graduate: int,
    rate: float,
    fraction: float,
    warmup: bool,
    drain: float,
) -> dict[str, Any]:
    """Send every message on schedule, wait for the replies, attribute them."""
    tg = cluster.tg
    pool = questions()
    users = [tg.user(100_000 + n, f"G{n}", language_code="zh") for n in range(graduates)]
    human = {u for u in range(graduates) if wants_counsellor(u, fraction)}

    def text_for(u: int, q: int) -> str:
        if u in human and q == 1:
            return "/human"
        return pool[(u * per_graduate + q) % len(pool)]

    def expected_kind(u: int, q: int) -> str:
        if u in human and q == 1:
            return "queue notice"
        if u in human and q >= 2:
            return "relay"
        return "answer"

    probe = CpuProbe(
        {
            **{r.name: r.pid for r in cluster.replicas},
            "postgres": postmaster_pid(cluster),
            "chroma": cluster.chroma.process.pid if cluster.chroma.process else 0,
        }
    )
    if warmup:
        await warm_up(cluster)
    sent_at: dict[tuple[int, int], float] = {}
    update_of: dict[tuple[int, int], int] = {}
    order = [(u, q) for q in range(per_graduate) for u in range(graduates)]
    attempts_before = len(tg.webhook_attempts)
    transactions = await pg_transactions(cluster)
    probe.start()
    started = time.time()
    interval = 1.0 / rate
    behind = 0.0
    for n, (u, q) in enumerate(order):
        delay = started + n * interval - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        behind = max(behind, -delay)
        sent_at[(u, q)] = time.time()
        update_of[(u, q)] = int(tg.send_text(users[u], text_for(u, q))["update_id"])
    sending = time.time() - started

    catalogue = Messages.load()
    queued = prefixes(catalogue, "tg_handoff_queued")
    notice = prefixes(catalogue, "handoff_requested")
    user_ids = {100_000 + u: u for u in range(graduates)}

    def classify() -> dict[int, dict[str, list[float]]]:
        got: dict[int, dict[str, list[float]]] = {}
        for record in list(tg.sent):
            if record.method == "sendMessage" and record.chat_id in user_ids:
                text = record.text or ""
                if text.startswith(notice):
                    continue  # "I'll ask a counsellor": before the queue notice, not a reply
                kind = "queue notice" if text.startswith(queued) else "answer"
                got.setdefault(user_ids[record.chat_id], {}).setdefault(kind, []).append(
                    record.time
                )
            elif record.method == "copyMessage" and record.chat_id == FORUM:
                source = record.params.get("from_chat_id")
                if isinstance(source, int) and source in user_ids:
                    got.setdefault(user_ids[source], {}).setdefault("relay", []).append(record.time)
        return got

    expected = graduates * per_graduate
    deadline = time.time() + drain
    while time.time() < deadline:
        if sum(len(v) for g in classify().values() for v in g.values()) >= expected:
            break
        await asyncio.sleep(0.25)
    with contextlib.suppress(AssertionError):  # still busy: what has not come is lost
        await tg.await_idle(timeout=min(60.0, drain), quiet=1.0)
    got = classify()
    finished = max(
        (t for g in got.values() for times in g.values() for t in times), default=time.time()
    )
    probe.stop()
    await asyncio.sleep(1.0)  # PostgreSQL publishes its statistics at most once a second
    after = await pg_transactions(cluster)
    # less our own three (measured on an idle server: two after the first read, one before
    # the second)
    transactions = after - transactions - 3 if min(after, transactions) >= 0 else -1
    wall = finished - started
    delivered: dict[int, float] = {}
    per_target: dict[str, int] = {}
    for attempt in list(tg.webhook_attempts)[attempts_before:]:
        if attempt.ok and attempt.update_id not in delivered:
            delivered[attempt.update_id] = attempt.time
            per_target[attempt.url] = per_target.get(attempt.url, 0) + 1
    failed_posts = sum(1 for a in list(tg.webhook_attempts)[attempts_before:] if not a.ok)

    outcomes: list[Outcome] = []
    stray = 0
    for u in range(graduates):
        mine = got.get(u, {})
        for kind in KINDS:
            qs = [q for q in range(per_graduate) if expected_kind(u, q) == kind]
            if not qs:
                stray += len(mine.get(kind, []))  # a kind this graduate should never get
                continue
            # A chat's updates are processed in order, so replies of one kind answer that
            # kind's messages in order: each goes to the first message not yet answered
            # that was sent before it, or else is a duplicate (of the last one sent).
            replies: dict[int, list[float]] = {q: [] for q in qs}
            for t in sorted(mine.get(kind, [])):
                before = [q for q in qs if sent_at[(u, q)] <= t] or qs[:1]
                waiting = [q for q in before if not replies[q]]
                replies[waiting[0] if waiting else before[-1]].append(t)
            for q in qs:
                times = replies[q]
                latency = times[0] - sent_at[(u, q)] if times else None
                accepted = delivered.get(update_of[(u, q)])
                delay = accepted - sent_at[(u, q)] if accepted is not None else None
                outcomes.append(Outcome(kind, latency, len(times), delay))
    violations = list(tg.violations)
    return {
        "outcomes": outcomes,
        "wall": wall,
        "sending": sending,
        "behind": behind,
        "probe": probe,
        "violations": violations,
        "handoffs": len(human),
        "stray": stray,
        "per_replica": [per_target.get(r.url, 0) for r in cluster.replicas],
        "failed_posts": failed_posts,
        "transactions": transactions,
    }


def summarise(raw: dict[str, Any], names: list[str]) -> dict[str, Any]:
    outcomes: list[Outcome] = raw["outcomes"]
    latencies = [o.latency for o in outcomes if o.latency is not None]
    replies = sum(1 for o in outcomes if o.replies >= 1)
    probe: CpuProbe = raw["probe"]
    wall = raw["wall"]
    by_kind: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        mine = [o for o in outcomes if o.kind == kind]
        lat = [o.latency for o in mine if o.latency is not None]
        by_kind[kind] = {
            "messages": len(mine),
            "lost": sum(1 for o in mine if o.replies == 0),
            "duplicated": sum(1 for o in mine if o.replies > 1),
            "p50": percentile(lat, 50) if lat else float("nan"),
            "p95": percentile(lat, 95) if lat else float("nan"),
            "p99": percentile(lat, 99) if lat else float("nan"),
            "max": max(lat, default=float("nan")),
        }
    waited = [o.delivery for o in outcomes if o.delivery is not None]
    processing = [
        o.latency - o.delivery for o in outcomes if o.latency is not None and o.delivery is not None
    ]
    return {
        "delivery_p50": percentile(waited, 50) if waited else float("nan"),
        "delivery_p95": percentile(waited, 95) if waited else float("nan"),
        "processing_p50": percentile(processing, 50) if processing else float("nan"),
        "processing_p95": percentile(processing, 95) if processing else float("nan"),
        "per_replica": raw["per_replica"],
        "failed_posts": raw["failed_posts"],
        "transactions_per_message": raw["transactions"] / len(outcomes)
        if outcomes and raw["transactions"] >= 0
        else float("nan"),
        "messages": len(outcomes),
        "replies": replies,
        "throughput": replies / wall if wall else 0.0,
        "p50": percentile(latencies, 50) if latencies else float("nan"),
        "p95": percentile(latencies, 95) if latencies else float("nan"),
        "p99": percentile(latencies, 99) if latencies else float("nan"),
        "max": max(latencies, default=float("nan")),
        "lost": sum(1 for o in outcomes if o.replies == 0),
        "duplicated": sum(1 for o in outcomes if o.replies > 1) + raw["stray"],
        "stray": raw["stray"],
        "cpu": {name: probe.percent(name, wall) for name in [*names, "postgres", "chroma"]},
        "cpu_ms_per_reply": 1000
        * sum(probe.after[n] - probe.before[n] for n in [*names, "postgres", "chroma"])
        / replies
        if replies
        else float("nan"),
        "bench_cpu": probe.percent("bench", wall),
        "violations": raw["violations"],
        "by_kind": by_kind,
        "wall": wall,
        "sending": raw["sending"],
        "behind": raw["behind"],
        "handoffs": raw["handoffs"],
    }


def run(replicas: int, args: argparse.Namespace, console: Console) -> dict[str, Any]:
    load = loadavg()
    console.print(
        f"[bold]{replicas} replica(s)[/]: load average before start-up {load} "
        f"({subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()})"
    )
    settings = dict(args.setting)
    with tempfile.TemporaryDirectory(prefix="gg-bench-scale-") as tmp:
        began = time.time()
        cluster = BenchCluster(
            Path(tmp),
            replicas,
            dict(args.env),
            rate_limit_per_minute="0",
            log_level="WARNING",
            **settings,
        )
        with cluster:
            cluster.tg.expect_violations()  # reported in the table, not raised on exit
            startup = time.time() - began
            before_run = loadavg()
            console.print(f"  started in {startup:.0f} s; load average {before_run}; sending…")
            try:
                raw = asyncio.run(
                    drive(
                        cluster,
                        args.graduates,
                        args.messages,
                        args.rate,
                        args.handoff,
                        not args.no_warmup,
                        args.drain,
                    )
                )
            except BaseException:
                console.print(cluster.logs())
                raise
            errors = [
                line
                for r in cluster.replicas
                if r.log.exists()
                for line in r.log.read_text(errors="replace").splitlines()
                if "ERROR" in line or "Traceback" in line
            ]
        result = summarise(raw, [r.name for r in cluster.replicas])
    result.update(replicas=replicas, load=load, load_run=before_run, startup=startup)
    result["errors"] = errors
    return result


def cpu_cell(result: dict[str, Any], names: list[str]) -> str:
    return " · ".join(f"{result['cpu'][n]:.0f}" for n in names)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--graduates", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=3, help="messages per graduate")
    parser.add_argument(
        "--rate",
        type=float,
        default=20.0,
        help="arrivals per second (20: about two thirds of what the cluster can do on two idle "
        "cores, ~60 ms of CPU per message; 30 is past it)",
    )
    parser.add_argument("--replicas", default="1,2", help="replica counts to run, e.g. 1,2")
    parser.add_argument(
        "--handoff", type=float, default=0.05, help="fraction asking for a counsellor"
    )
    parser.add_argument(
        "--drain",
        type=float,
        default=180.0,
        help="seconds to wait for replies after the last message (later ones count as lost)",
    )
    parser.add_argument(
        "--no-warmup",
        action="store_true",
        help="skip the two questions each replica answers before the measurement",
    )
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        type=lambda s: tuple(s.split("=", 1)),
        metavar="NAME=VALUE",
        help="extra GRADGUIDE_ setting for every replica, e.g. agent_threads=2",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        type=lambda s: tuple(s.split("=", 1)),
        metavar="NAME=VALUE",
        help="extra environment variable for every replica, e.g. OPENBLAS_NUM_THREADS=1",
    )
    args = parser.parse_args()
    if args.messages < 3:
        parser.error("--messages must be at least 3 (question, /human, relayed message)")
    counts = [int(n) for n in args.replicas.split(",") if n.strip()]
    # SIGTERM unwinds like Ctrl-C: the cluster's servers and replicas are stopped, not orphaned
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    console = Console(width=160)
    os.environ.pop("GRADGUIDE_DATABASE_URL", None)
    results = [run(n, args, console) for n in counts]

    table = Table(
        title=f"Scale-out load — {args.graduates} graduates × {args.messages} messages "
        f"({args.handoff:.0%} ask for a counsellor), arrivals {args.rate:g}/s open-loop; "
        "webhooks round-robin, PostgreSQL, Chroma server, fake Bot API over HTTP; "
        f"{os.cpu_count()} cores" + "".join(f"; {k}={v}" for k, v in [*args.env, *args.setting])
    )
    for column in (
        "replicas",
        "load 1 min",
        "messages",
        "replies",
        "replies/s",
        "p50 s",
        "p95 s",
        "p99 s",
        "max s",
        "lost",
        "dup",
        "CPU %/replica",
        "Postgres CPU %",
        "Chroma CPU %",
        "cluster CPU ms/reply",
        "fake API CPU %",
        "spec viol.",
    ):
        table.add_column(column, justify="right")
    for r in results:
        names = [f"r{i + 1}" for i in range(r["replicas"])]
        table.add_row(
            str(r["replicas"]),
            r["load_run"].split()[0],
            str(r["messages"]),
            str(r["replies"]),
            f"{r['throughput']:.1f}",
            f"{r['p50']:.3f}",
            f"{r['p95']:.3f}",
            f"{r['p99']:.3f}",
            f"{r['max']:.2f}",
            str(r["lost"]),
            str(r["duplicated"]),
            cpu_cell(r, names),
            f"{r['cpu']['postgres']:.0f}",
            f"{r['cpu']['chroma']:.0f}",
            f"{r['cpu_ms_per_reply']:.0f}",
            f"{r['bench_cpu']:.0f}",
            str(len(r["violations"])),
        )
    console.print(table)

    detail = Table(title="By kind of message (latency: update → reply, or → copy in the topic)")
    for column in ("replicas", "kind", "messages", "p50 s", "p95 s", "p99 s", "max s", "lost"):
        detail.add_column(column, justify="right")
    detail.add_column("dup", justify="right")
    for r in results:
        for kind, k in r["by_kind"].items():
            detail.add_row(
                str(r["replicas"]),
                kind,
                str(k["messages"]),
                f"{k['p50']:.3f}",
                f"{k['p95']:.3f}",
                f"{k['p99']:.3f}",
                f"{k['max']:.2f}",
                str(k["lost"]),
                str(k["duplicated"]),
            )
    console.print(detail)

    for r in results:
        console.print(
            f"{r['replicas']} replica(s): start-up {r['startup']:.0f} s (load average before "
            f"it {r['load']}); sending took {r['sending']:.1f} s (the sender was at most "
            f"{r['behind'] * 1000:.0f} ms behind schedule); last reply after {r['wall']:.1f} s; "
            f"{r['handoffs']} graduates asked for a counsellor; {r['stray']} replies of a "
            "kind the graduate should not get (counted as duplicated); "
            f"{len(r['errors'])} ERROR/Traceback lines in the replica logs."
        )
        console.print(
            f"  where the time goes: update → webhook POST answered (the replica answers "
            f"once the update is processed) p50 {r['delivery_p50']:.3f} s, "
            f"p95 {r['delivery_p95']:.3f} s; POST answered → reply p50 "
            f"{r['processing_p50']:.3f} s, p95 {r['processing_p95']:.3f} s (negative: the "
            f"reply went out first); updates per replica "
            f"{' · '.join(map(str, r['per_replica']))}; {r['failed_posts']} failed webhook POSTs; "
            f"{r['transactions_per_message']:.1f} PostgreSQL transactions per message."
        )
        for violation in r["violations"][:5]:
            console.print(f"  spec violation: {violation}")
        for line in r["errors"][:5]:
            console.print(f"  log: {line[:200]}")
        ok = r["lost"] == 0 and r["duplicated"] == 0 and r["p95"] <= 1.5
        console.print(
            f"  targets (0 lost, 0 duplicated, p95 ≤ 1.5 s): "
            f"{'met' if ok else 'NOT met'} — lost {r['lost']}, duplicated {r['duplicated']}, "
            f"p95 {r['p95']:.3f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
