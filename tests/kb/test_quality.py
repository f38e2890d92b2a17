"""Quality regression: hybrid hit@3 on the evaluation set must stay at or above 0.85."""

from __future__ import annotations

from bot.kb.evaluation import evaluate, load_eval_set
from bot.kb.service import KnowledgeBase
from tests.conftest import ROOT

EVAL_SET = ROOT / "tests" / "eval" / "retrieval.jsonl"


def test_eval_set_is_realistic_and_well_formed(bundled_kb: KnowledgeBase) -> None:
    questions = load_eval_set(EVAL_SET)
    assert len(questions) >= 150
    zh = sum(q.lang == "zh" for q in questions)
    assert 0.55 <= zh / len(questions) <= 0.75, "about two-thirds Chinese"
    assert len({q.id for q in questions}) == len(questions)
    known = {d.meta.id for d in bundled_kb.documents()}
    missing = {doc for q in questions for doc in q.expected} - known
    assert not missing, f"expected documents not in the corpus: {missing}"


def test_hybrid_hit_at_3_stays_above_085(bundled_kb: KnowledgeBase) -> None:
    result = evaluate(bundled_kb.retriever, load_eval_set(EVAL_SET), modes=("hybrid",))
    for lang in ("zh", "en", "all"):
        metrics = result.get("hybrid", lang)
        assert metrics.hit3 >= 0.85, f"hybrid hit@3 for {lang} fell to {metrics.hit3:.3f}"
    assert result.get("hybrid", "all").lang_match1 >= 0.9, (
        "answers should prefer the asker's language"
    )
