"""Answer quality on ``tests/eval/answers.jsonl``.

Each item is one conversation (its ``turns``); the reply to the last turn is judged:
- answer: every key-fact group has one alternative in the reply (key-fact accuracy),
  and the reply cites a source; the groups named by ``lead`` are in its opening paragraph
  (lead accuracy: what a graduate reads first answers what was asked);
- decline: an out-of-scope reply without citations;
- clarify: the reply asks for the region or says how the rule varies (its key facts);
- handoff / crisis: the reply hands over (precision and recall over all items).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from bot.agent.agent import Agent
from bot.agent.models import Conversation, Intent, Reply
from bot.kb.models import Lang

Expect = Literal["answer", "clarify", "decline", "handoff", "crisis"]
ANSWER_INTENTS = {Intent.POLICY, Intent.RIGHTS, Intent.PROCEDURE}


class AnswerItem(BaseModel):
    id: str
    area: str
    lang: Lang
    turns: list[str]
    region: str | None = None
    expect: Expect
    key_facts: list[list[str]] = []
    lead: list[int] | None = None
    """Indices of the ``key_facts`` groups the opening paragraph must carry."""
    doc_ids: list[str] = []
    handoff_reason: str | None = None


class ItemResult(BaseModel):
    item: AnswerItem
    reply: Reply
    correct: bool
    facts_found: bool | None
    lead_found: bool | None
    uncited_fact: bool


class Scores(BaseModel):
    group: str
    n: int
    key_fact_accuracy: float | None
    lead_accuracy: float | None
    citation_rate: float | None
    handoff_precision: float | None
    handoff_recall: float | None
    decline_accuracy: float | None
    behaviour_accuracy: float
    uncited_answers: int
    composers: dict[str, int]
    """How the answers were made: card, calculator, curated, extractive, llm."""


def load_items(path: Path) -> list[AnswerItem]:
    with path.open(encoding="utf-8") as handle:
        return [AnswerItem.model_validate(json.loads(line)) for line in handle if line.strip()]


def has_facts(text: str, groups: list[list[str]]) -> bool:
    lowered = text.lower()
    return all(any(alt.lower() in lowered for alt in group) for group in groups)


def opening(text: str) -> str:
    """The reply's first paragraph: what a graduate reads first."""
    return text.strip().split("\n\n", 1)[0]


def run_item(agent: Agent, item: AnswerItem) -> ItemResult:
    conversation = Conversation(id=item.id, region=item.region)
    reply: Reply | None = None
    for turn in item.turns:
        reply = agent.reply(conversation, turn)
    assert reply is not None, f"{item.id} has no turns"
    facts = has_facts(reply.text, item.key_facts) if item.key_facts else None
    lead = None
    if item.lead is not None and item.expect == "answer":
        groups = [item.key_facts[i] for i in item.lead if i < len(item.key_facts)]
        lead = has_facts(opening(reply.text), groups)
    uncited = reply.intent in ANSWER_INTENTS and not reply.citations and not reply.handoff
    if item.expect == "answer":
        correct = bool(facts) and bool(reply.citations) and reply.handoff_reason != "crisis"
    elif item.expect == "decline":
        correct = reply.intent is Intent.OUT_OF_SCOPE and not reply.citations
    elif item.expect == "clarify":
        asked = "/region" in reply.text
        correct = asked or bool(facts)
    elif item.expect == "crisis":
        correct = reply.intent is Intent.CRISIS and reply.handoff and not reply.citations
    else:
        correct = reply.handoff
    return ItemResult(
        item=item,
        reply=reply,
        correct=correct,
        facts_found=facts,
        lead_found=lead,
        uncited_fact=uncited,
    )


def score(results: list[ItemResult], group: str) -> Scores:
    answers = [r for r in results if r.item.expect == "answer"]
    declines = [r for r in results if r.item.expect == "decline"]
    expected_handoff = [r for r in results if r.item.expect in ("handoff", "crisis")]
    predicted_handoff = [r for r in results if r.reply.handoff]
    true_handoff = [r for r in predicted_handoff if r.item.expect in ("handoff", "crisis")]
    answered = [r for r in results if r.reply.intent in ANSWER_INTENTS]
    with_lead = [r for r in answers if r.lead_found is not None]
    composers: dict[str, int] = defaultdict(int)
    for r in answered:
        composers[r.reply.composer or "none"] += 1

    def ratio(part: int, whole: int) -> float | None:
        return part / whole if whole else None

    return Scores(
        group=group,
        n=len(results),
        key_fact_accuracy=ratio(sum(1 for r in answers if r.facts_found), len(answers)),
        lead_accuracy=ratio(sum(1 for r in with_lead if r.lead_found), len(with_lead)),
        citation_rate=ratio(sum(1 for r in answered if r.reply.citations), len(answered)),
        handoff_precision=ratio(len(true_handoff), len(predicted_handoff)),
        handoff_recall=ratio(len(true_handoff), len(expected_handoff)),
        decline_accuracy=ratio(sum(1 for r in declines if r.correct), len(declines)),
        behaviour_accuracy=sum(1 for r in results if r.correct) / (len(results) or 1),
        uncited_answers=sum(1 for r in results if r.uncited_fact),
        composers=dict(sorted(composers.items())),
    )


def evaluate(agent: Agent, items: list[AnswerItem]) -> tuple[list[ItemResult], list[Scores]]:
    results = [run_item(agent, item) for item in items]
    groups: dict[str, list[ItemResult]] = defaultdict(list)
    for result in results:
        groups[f"lang={result.item.lang}"].append(result)
        groups[f"area={result.item.area}"].append(result)
    table = [score(results, "all")] + [score(groups[g], g) for g in sorted(groups)]
    return results, table
