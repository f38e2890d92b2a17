"""Answer cards and rights calculators in the agent: the number or the direct answer first,
then the document's own sentence and the source; a missing number asked for and used in the
next turn; never a card whose document is absent, changed, or another region's."""

from __future__ import annotations

import re
from collections.abc import Callable

from bot.agent.agent import Agent
from bot.agent.card_match import ARTEFACT, read_artefact
from bot.agent.card_train import cards_digest
from bot.agent.models import Conversation, Reply
from bot.kb.cards import comparable, read_cards
from bot.settings import BUNDLED_KNOWLEDGE_DIR, Settings
from tests.agent.conftest import paragraphs, small_kb, source_text
from tests.conftest import DocWriter

Ask = Callable[..., Reply]


def quoted(reply: Reply) -> str:
    (found,) = [m.group(1) for p in paragraphs(reply) if (m := re.match(r"^原文：「(.+)」$", p))]
    return found


def test_a_calculation_asks_for_the_number_then_opens_with_the_result(
    bundled_agent: Agent,
) -> None:
    conversation = Conversation()
    first = bundled_agent.reply(conversation, "经济补偿金怎么计算")
    assert first.composer == "calculator"
    assert "工作了多长时间" in first.text  # the rule, then the question for the input
    second = bundled_agent.reply(conversation, "我干了3年7个月")
    opening = paragraphs(second)[0]
    assert opening.startswith("按你工作3年7个月，经济补偿是4个月工资"), opening
    assert "第四十七条" in opening
    assert second.citations[0].doc_id == "termination-compensation-zh"
    assert comparable(quoted(second)) in comparable(source_text("termination-compensation-zh"))
    third = bundled_agent.reply(conversation, "试用期工资最低能给多少")
    assert "工作了多长时间" not in third.text  # a new question, not the old one again


def test_a_card_rests_on_the_current_text_of_its_document(
    settings: Settings, write_doc: DocWriter
) -> None:
    """The probation documents here are the test's own, without the sentences the bundled
    cards quote: no card answers, the documents do."""
    kb = small_kb(settings, write_doc)
    agent = Agent(kb, settings.model_copy(update={"knowledge_dir": BUNDLED_KNOWLEDGE_DIR}))
    reply = agent.reply(Conversation(), "签了两年的劳动合同，试用期最长能约定多久？")
    assert reply.composer == "extractive"
    assert reply.citations and reply.citations[0].doc_id == "probation-zh"


def test_another_regions_card_is_not_used_without_that_region(bundled_agent: Agent) -> None:
    answerer = bundled_agent._cards
    assert answerer is not None
    card = answerer.matcher.get("fresh-graduate-shanghai-public-institution-2-years")
    assert card is not None
    question = card.question.zh
    for region in (None, "guizhou"):
        assert answerer.answer_with(Conversation(), card, question, "zh", region) is None
    reply = answerer.answer_with(Conversation(), card, question, "zh", "shanghai")
    assert reply is not None
    assert reply.citations[0].doc_id == "fresh-graduate-shanghai-zh"
    assert paragraphs(reply)[0] == card.answer.zh


def test_the_shipped_card_model_was_fitted_to_the_bundled_cards() -> None:
    cards, errors = read_cards(BUNDLED_KNOWLEDGE_DIR / "cards")
    assert not errors
    keys, _, model = read_artefact(ARTEFACT)
    assert model is not None
    assert model.meta["cards_sha256"] == cards_digest(cards), (
        "the cards changed: run `gradguide train-cards` and commit bot/agent/card_data/"
    )
    assert 0.0 < model.threshold < 1.0
    assert len(keys) >= len(cards) * 2 * 7  # a question and 6+ variants per language
