"""Message-check benchmark: recall first, per class and per language, on a labelled set.

Usage:
    python bench/guard.py [--set tests/eval/guard/dev.jsonl] [--no-agent] [--show-misses]

Two readings of the same set:
- the classifier alone (``Guard.classify``);
- the agent on the bundled knowledge base (embedded default configuration): each message is
  sent after its ``context`` messages, and the reply is read back as a class (crisis = the
  crisis message with an urgent handoff; human = a requested handoff; illegal = the illegal
  refusal; declined = the scope or injection refusal; else ordinary).

Then latency: the check alone (cold: the message's embedding is not cached), and what it adds
to an answer (ordinary messages answered with the check, and with a check that lets
everything through), on the machine's cores; the benchmark process's peak memory, and that
of a serving process (``bench/serving.py``) answering the set on the built index.

Which set is blind matters: the development set (``dev.jsonl``) chose the thresholds. A blind
set is written by someone who saw only ``tests/eval/guard/CLASSES.md``; measure it once, then
it becomes development data.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.serving import serving_peak_mb  # noqa: E402
from bot.agent.agent import Agent  # noqa: E402
from bot.agent.guard import CRISIS, Guard, GuardWeights, Label, Verdict  # noqa: E402
from bot.agent.guard_eval import (  # noqa: E402
    Example,
    GuardReport,
    Outcome,
    classify_all,
    read_examples,
)
from bot.agent.models import Conversation, HandoffReason, Intent, Reply  # noqa: E402
from bot.cli_train import guard_tables  # noqa: E402
from bot.kb.evaluation import percentile  # noqa: E402
from bot.kb.service import KnowledgeBase  # noqa: E402
from bot.prompts import Messages  # noqa: E402
from bot.settings import Settings  # noqa: E402


def behaviour(reply: Reply, messages: Messages) -> Label:
    """What the graduate got, as a class."""
    if reply.intent is Intent.CRISIS and reply.handoff_reason is HandoffReason.CRISIS:
        kind = reply.signals[0] if reply.signals else "self_harm"
        return Label(kind) if Label(kind) in CRISIS else Label.SELF_HARM
    if reply.handoff_reason is HandoffReason.REQUESTED:
        return Label.HUMAN
    if reply.text == messages.get("illegal", reply.lang):
        return Label.ILLEGAL
    if reply.text == messages.get("injection", reply.lang):
        return Label.INJECTION
    if reply.intent is Intent.OUT_OF_SCOPE:
        return Label.OUT_OF_SCOPE
    return Label.ORDINARY


def through_agent(agent: Agent, examples: list[Example], messages: Messages) -> GuardReport:
    outcomes = []
    for example in examples:
        conversation = Conversation()
        for earlier in example.context:
            agent.reply(conversation, earlier)
        reply = agent.reply(conversation, example.text)
        outcomes.append(Outcome(example, behaviour(reply, messages)))
    return GuardReport(outcomes)


class PassThrough(Guard):
    """A check that lets every message through (the baseline for the added latency)."""

    def __init__(self, weights: GuardWeights) -> None:
        self.weights = weights

    def classify(self, text: str, earlier: str | None = None) -> Verdict:
        return Verdict(Label.ORDINARY, {}, ())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", type=Path, default=ROOT / "tests" / "eval" / "guard" / "dev.jsonl")
    parser.add_argument("--no-agent", action="store_true", help="the classifier only")
    parser.add_argument("--show-misses", action="store_true")
    args = parser.parse_args()
    console = Console(width=160)
    examples = read_examples([args.set])
    messages = Messages.load()
    with tempfile.TemporaryDirectory(prefix="gg-bench-guard-") as tmp:
        settings = Settings(data_dir=Path(tmp), chroma_url=None)
        kb = KnowledgeBase.open(settings)
        if not args.no_agent:
            kb.ingest([settings.knowledge_dir])
        agent = Agent(kb, settings, messages)
        guard: Guard = agent._guard  # the one the agent uses
        title = f"Classifier — {args.set.name} ({len(examples)} messages)"
        _report(console, classify_all(guard, examples), title, args.show_misses)

        cold = []
        for example in examples:
            started = time.perf_counter()
            guard.scores(example.text + " ")  # a text the embedding cache has not seen
            cold.append((time.perf_counter() - started) * 1000)
        console.print(
            f"check alone (cold): p50 {percentile(cold, 50):.1f} ms, "
            f"p95 {percentile(cold, 95):.1f} ms over {len(cold)} messages"
        )
        if args.no_agent:
            return 0

        through_agent(agent, examples[:40], messages)  # warm-up
        title = f"What the graduate got — {args.set.name} through the agent"
        _report(console, through_agent(agent, examples, messages), title, args.show_misses)

        ordinary = [e.text for e in examples if e.label is Label.ORDINARY and not e.context]
        with_check = _latencies(agent, ordinary, suffix="  ")
        baseline = Agent(kb, settings, messages, guard=PassThrough(guard.weights))
        without = _latencies(baseline, ordinary, suffix="   ")
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        serving_mb = serving_peak_mb(
            Path(tmp), [(str(n), [*e.context, e.text]) for n, e in enumerate(examples)]
        )
        console.print(
            f"answer latency, {len(ordinary)} ordinary messages: with the check "
            f"p50 {percentile(with_check, 50):.1f} / p95 {percentile(with_check, 95):.1f} ms; "
            f"without p50 {percentile(without, 50):.1f} / p95 {percentile(without, 95):.1f} ms; "
            f"added at p95 {percentile(with_check, 95) - percentile(without, 95):.1f} ms; "
            f"peak RSS {rss_mb:.0f} MB (this process: a full ingest, two agents); a serving "
            f"process answering every message of the set on the built index: {serving_mb:.0f} MB"
        )
    return 0


def _report(console: Console, report: GuardReport, title: str, show_misses: bool) -> None:
    for table in guard_tables(report, title):
        console.print(table)
    if show_misses:  # reading them makes a blind set development data
        for o in report.outcomes:
            if o.example.label is not o.predicted:
                console.print(f"{o.example.label} → {o.predicted}: {o.example.text[:120]}")


def _latencies(agent: Agent, texts: list[str], suffix: str) -> list[float]:
    """Answer latency of each text, sent alone (the suffix keeps the embedding cache cold)."""
    out = []
    for text in texts:
        reply = agent.reply(Conversation(), text + suffix)
        out.append(reply.latency_ms)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
