"""Answer-quality regression on the evaluation set (the embedded default, no LLM).

The issue's floor is 0.85 key-fact accuracy; the extractive composer measures 0.825 today, so
this test guards the current level (0.80) until the composer reaches the target.
"""

from __future__ import annotations

from bot.agent.agent import Agent
from bot.agent.evaluation import evaluate, load_items
from tests.conftest import ROOT

ANSWERS = ROOT / "tests" / "eval" / "answers.jsonl"
KEY_FACT_FLOOR = 0.85


def test_answer_eval_set_is_broad(bundled_agent: Agent) -> None:
    items = load_items(ANSWERS)
    assert len(items) >= 120
    assert {i.lang for i in items} == {"zh", "en"}
    assert {i.expect for i in items} == {"answer", "clarify", "decline", "handoff", "crisis"}
    assert sum(len(i.turns) > 1 for i in items) >= 10, "multi-turn conversations"


def test_answer_quality_does_not_regress(bundled_agent: Agent) -> None:
    _, table = evaluate(bundled_agent, load_items(ANSWERS))
    overall = table[0]
    assert overall.key_fact_accuracy is not None
    assert overall.key_fact_accuracy >= KEY_FACT_FLOOR, overall
    assert overall.uncited_answers == 0, "a policy answer without a citation"
    assert overall.handoff_recall == 1.0, "every crisis and request reaches a counsellor"
    assert (overall.handoff_precision or 0) >= 0.9
    assert (overall.decline_accuracy or 0) >= 0.9
