"""Answer cards and rights calculators in the agent: the number or the direct answer first,
then the document's own sentence and the source; a missing number asked for and used in the
next turn; never a card whose document is absent, changed, or another region's."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.agent.agent import Agent
from bot.agent.card_match import ARTEFACT, load_matcher, read_artefact
from bot.agent.card_train import cards_digest
from bot.agent.models import Conversation, Reply
from bot.components.embeddings import UseM3Embedder
from bot.kb.cards import comparable, files_digest, read_cards
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


def test_numbers_told_before_the_question_are_computed_with(bundled_agent: Agent) -> None:
    """The wage and the service told in the first message, the question in the second: the
    answer opens with the amount, though several severance cards ask nearly the same."""
    conversation = Conversation()
    bundled_agent.reply(conversation, "我月薪8000")
    reply = bundled_agent.reply(conversation, "干了5个月公司跟我协商解除，补偿给多少")
    assert reply.composer == "calculator"
    opening = paragraphs(reply)[0]
    assert opening.startswith("按你工作5个月，经济补偿是半个月工资。"), opening
    assert "金额是4,000元" in opening


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
    answerer = bundled_agent._card_answerer()
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
    trained = read_artefact(ARTEFACT)
    assert trained is not None
    stale = "the cards changed: run `gradguide train-cards` and commit bot/agent/card_data/"
    assert trained.model.meta["cards_sha256"] == cards_digest(cards), stale
    assert trained.files_sha256 == files_digest(BUNDLED_KNOWLEDGE_DIR / "cards"), stale
    assert 0.0 < trained.model.threshold < 1.0
    assert len(trained.keys) >= len(cards) * 2 * 7  # a question and 6+ variants per language


def test_an_edited_card_file_is_read_instead_of_the_trained_copy(
    settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "knowledge" / "cards"
    shutil.copytree(BUNDLED_KNOWLEDGE_DIR / "cards", folder)
    path = folder / "probation.yaml"
    text = path.read_text(encoding="utf-8")
    card = next(c for c in read_cards(folder)[0] if c.id.startswith("probation-"))
    path.write_text(text.replace(card.answer.en, "Edited by an admin."), encoding="utf-8")
    local = settings.model_copy(update={"knowledge_dir": tmp_path / "knowledge"})
    matcher = load_matcher(UseM3Embedder(settings.data_dir / "cache"), local)
    assert matcher is not None
    edited = matcher.get(card.id)
    assert edited is not None and edited.answer.en == "Edited by an admin."
    shipped = settings.model_copy(update={"knowledge_dir": BUNDLED_KNOWLEDGE_DIR})
    bundled = load_matcher(UseM3Embedder(settings.data_dir / "cache"), shipped)
    assert bundled is not None
    original = bundled.get(card.id)
    assert original is not None and original.answer.en == card.answer.en


def test_a_damaged_card_model_leaves_answers_to_the_documents(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    damaged = tmp_path / "cards.npz"
    damaged.write_bytes(b"not a numpy archive")
    shipped = settings.model_copy(update={"knowledge_dir": BUNDLED_KNOWLEDGE_DIR})
    embedder = UseM3Embedder(settings.data_dir / "cache")
    assert load_matcher(embedder, shipped, damaged) is None
    assert "answer cards not used: cannot read the card model" in caplog.text
