"""Agent fixtures: an agent on the bundled corpus (indexed once per session) and an agent
on a small knowledge base of hand-written documents."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.agent.agent import Agent
from bot.agent.models import Conversation, Reply
from bot.kb.models import Lang
from bot.kb.service import KnowledgeBase
from bot.settings import BUNDLED_KNOWLEDGE_DIR, Settings
from tests.conftest import DocWriter, open_kb

PROBATION_ZH = (
    "# 试用期\n\n"
    "## 试用期最长多久\n\n"
    "试用期最长不得超过六个月，具体上限取决于劳动合同期限。\n\n"
    "## 试用期工资\n\n"
    "试用期工资不得低于劳动合同约定工资的百分之八十，并不得低于当地最低工资标准。\n"
)
PROBATION_EN = (
    "# Probation\n\n"
    "## How long probation can last\n\n"
    "A probation period may not exceed six months, depending on the contract term.\n\n"
    "## Probation pay\n\n"
    "Probation pay must be at least 80% of the agreed wage and never below the local "
    "minimum wage.\n"
)


def write_probation_docs(write_doc: DocWriter) -> None:
    write_doc(
        "probation-zh",
        PROBATION_ZH,
        title="试用期规定",
        doc_number="中华人民共和国主席令第七十三号",
        source_url="https://flk.npc.gov.cn/",
    )
    write_doc(
        "probation-en",
        PROBATION_EN,
        title="Probation rules",
        lang="en",
        authority="Standing Committee of the NPC",
        topics=["rights"],
    )


@pytest.fixture(scope="session")
def bundled_agent(bundled_kb: KnowledgeBase) -> Agent:
    return Agent(bundled_kb, bundled_kb.settings)


@pytest.fixture
def ask(bundled_agent: Agent) -> Callable[..., Reply]:
    """ask("question", ...) -> the reply to the last of one or more turns of a new
    conversation on the bundled corpus."""

    def run(*turns: str, lang: Lang | None = None, region: str | None = None) -> Reply:
        conv = Conversation(lang=lang, region=region)
        reply = None
        for turn in turns:
            reply = bundled_agent.reply(conv, turn)
        assert reply is not None
        return reply

    return run


def small_kb(settings: Settings, write_doc: DocWriter, probation: bool = True) -> KnowledgeBase:
    """The test's own knowledge base: the documents written so far, plus (by default) the
    probation documents in zh and en."""
    if probation:
        write_probation_docs(write_doc)
    kb = open_kb(settings)
    report = kb.ingest([settings.knowledge_dir])
    assert not report.failed, report.failed
    return kb


_MARKDOWN_LIST = re.compile(r"^\s*(?:[-*+]|\d+[.)、])\s+", re.MULTILINE)


def plain(text: str) -> str:
    """Markdown source or an answer paragraph as plain text: no emphasis, no list markers,
    one space for every run of white space."""
    text = _MARKDOWN_LIST.sub("", text.replace("**", "").replace("__", ""))
    return re.sub(r"\s+", " ", text).strip()


def source_text(doc_id: str) -> str:
    """The bundled document's file, as plain text."""
    (path,) = BUNDLED_KNOWLEDGE_DIR.rglob(f"{doc_id}.md")
    return plain(Path(path).read_text(encoding="utf-8"))


def paragraphs(reply: Reply) -> list[str]:
    return [p for p in reply.text.split("\n\n") if p.strip()]
