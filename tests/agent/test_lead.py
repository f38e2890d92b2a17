"""The lead ranker: which sentence of a document opens the answer (``bot.agent.lead_rank``),
and how it is fitted (``bot.agent.lead_train``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import cast

import pytest

from bot.agent.agent import Agent
from bot.agent.compose import also_answering
from bot.agent.lead_rank import ARTEFACT, FEATURES, Candidate, LeadModel, is_yes_no
from bot.agent.models import Conversation
from bot.errors import ConfigError
from bot.kb.retriever import Hit
from bot.kb.service import KnowledgeBase

lead_train = pytest.importorskip("bot.agent.lead_train", reason="training needs scikit-learn")

BASE = Candidate(
    own=0.0,
    context=0.0,
    heading=0.0,
    fact=False,
    opening=False,
    position=3,
    shape=False,
    asks_shape=False,
    retrieved_rank=None,
    section_rank=None,
    chunk_dense=0.0,
    table_row=False,
    list_item=False,
    length=40,
    yes_no=False,
    modal=False,
)


@pytest.mark.parametrize(
    "question",
    [
        "签一年合同试用期三个月合法吗？",
        "公司扣我押金，这样可以吗",
        "Can they fire me during probation?",
        "Is that legal?",
        "试用期能不能不交社保",
    ],
)
def test_yes_no_questions_are_recognised(question: str) -> None:
    assert is_yes_no(question)


@pytest.mark.parametrize(
    "question", ["试用期最长多久？", "How long can probation last?", "怎么办理报到"]
)
def test_open_questions_are_not_yes_no(question: str) -> None:
    assert not is_yes_no(question)


def test_a_sentence_carries_a_quote_it_contains_or_nearly_repeats() -> None:
    sentence = "劳动合同期限一年以上不满三年的，试用期不得超过二个月。"
    assert lead_train.carries(sentence, "试用期不得超过二个月")
    assert lead_train.carries(
        "Probation may not exceed six months.", "probation may not exceed six months"
    )
    assert not lead_train.carries(sentence, "试用期工资不得低于约定工资的百分之八十")


def test_the_fit_learns_which_measurement_marks_the_answer() -> None:
    """In every question the answering sentence has the higher dense similarity and the
    other has the higher word overlap: the model must learn to trust the first."""
    groups = []
    for i in range(30):
        right = dataclasses.replace(BASE, chunk_dense=0.6 + i / 100, own=0.2)
        wrong = dataclasses.replace(BASE, chunk_dense=0.2, own=0.5)
        groups.append(lead_train.Group(f"c{i}", "q", [wrong, right], [False, True]))
    model = lead_train._fit(groups)
    assert lead_train.top1(groups, model.score) == 1.0
    assert lead_train.top1(groups, lead_train.hand_score) == 0.0, "the old weights favour words"
    weights = dict(zip(FEATURES, model.weights, strict=True))
    assert weights["chunk_dense"] > 0 > weights["own"]


def test_the_shipped_model_was_fitted_and_beat_the_hand_weights_on_held_out_questions() -> None:
    model = LeadModel.load()
    assert not model.meta.get("placeholder"), "run `gradguide train-lead`"
    assert model.meta["held_out_top1_learned"] > model.meta["held_out_top1_hand_weights"]
    assert model.meta["held_out_questions"] >= 1000


def test_a_model_fitted_to_other_features_is_refused_with_the_command_to_run(
    tmp_path: Path,
) -> None:
    stale = tmp_path / "lead.json"
    stale.write_text(ARTEFACT.read_text().replace('"own"', '"overlap"', 1))
    with pytest.raises(ConfigError, match="train-lead"):
        LeadModel.load(stale)


@pytest.mark.parametrize("ranker", ["hand", "learned"])
def test_a_documents_answer_opens_with_the_rule_that_answers(
    bundled_kb: KnowledgeBase, ranker: str
) -> None:
    update = {"answer_cards": False, "lead_ranker": ranker}
    settings = bundled_kb.settings.model_copy(update=update)
    agent = Agent(bundled_kb, settings)
    reply = agent.reply(Conversation(), "劳动合同签三年，试用期最长可以约定多久？")
    opening = reply.text.split("\n\n", 1)[0]
    assert "六个月" in opening, reply.text


def test_a_second_sentence_that_answers_by_itself_opens_the_answer_too() -> None:
    """The learned ranker's probability 0.5 (``answers_alone``): a rule and its case both
    open the answer, in document order; a weaker sentence stays for the points below."""
    hit = cast(Hit, object())
    weak = (0.2, 1, "试用期包含在劳动合同期限内。", hit)
    rule = (0.9, 3, "试用期最长不得超过六个月。", hit)
    case = (0.6, 5, "三年以上固定期限的，试用期不得超过六个月。", hit)
    alone = LeadModel.answers_alone
    assert alone is not None
    assert also_answering([rule], [weak, rule, case], alone) == [rule, case]
    assert also_answering([rule], [weak, rule], alone) == [rule]
