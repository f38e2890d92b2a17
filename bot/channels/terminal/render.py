"""How the terminal prints the agent's answer: light enough for ``gradguide ask``, which
must start in under two seconds and never loads the database layer."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from bot.agent.models import Intent, Reply


def print_reply(reply: Reply, out_: Console) -> None:
    """The agent's answer with its sources, as ``ask`` and ``chat`` print it."""
    style = "red" if reply.intent is Intent.CRISIS else "green"
    out_.print(f"[{style}]{escape(reply.text)}[/]")
    if reply.handoff:
        reason = reply.handoff_reason.value if reply.handoff_reason else ""
        out_.print(f"[yellow]→ counsellor handoff ({reason})[/]")
    for number, citation in enumerate(reply.citations, start=1):
        details = " · ".join(
            x for x in (citation.doc_number, citation.source_url or "", citation.doc_id) if x
        )
        out_.print(f"[dim][{number}] {escape(citation.title)} — {escape(details)}[/]")
    if reply.suggestions:
        out_.print("[dim]→ " + escape(" | ".join(reply.suggestions)) + "[/]")
