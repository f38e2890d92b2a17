"""The terminal chat and the bilingual message catalogue."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.prompts import Messages
from bot.settings import Settings
from tests.conftest import DocWriter, run_gradguide


def test_every_message_exists_in_both_languages() -> None:
    messages = Messages.load()
    assert messages.names()
    for key in messages.names():
        assert messages.template(key, "zh") != messages.template(key, "en"), key
        assert messages.placeholders(key, "zh") == messages.placeholders(key, "en"), key


def test_a_message_missing_a_language_is_refused(tmp_path: Path) -> None:
    (tmp_path / "messages.yaml").write_text("hello:\n  zh: 你好\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="needs both zh and en"):
        Messages.load(tmp_path)


def test_a_message_defined_in_two_catalogues_is_refused(tmp_path: Path) -> None:
    (tmp_path / "messages.yaml").write_text("hello:\n  zh: 你好\n  en: Hi\n", encoding="utf-8")
    (tmp_path / "telegram.yaml").write_text("hello:\n  zh: 您好\n  en: Hello\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="already defined"):
        Messages.load(tmp_path)


def test_chat_answers_with_citations_in_the_askers_language(
    settings: Settings, write_doc: DocWriter
) -> None:
    write_doc(
        "probation-zh",
        "## 试用期\n\n试用期最长不得超过六个月。\n",
        title="试用期规定",
        doc_number="主席令第七十三号",
    )
    result = run_gradguide(settings, "chat", stdin="试用期最长多久？\n/quit\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "六个月" in out
    assert "依据：《试用期规定》（测试机关；主席令第七十三号" in out
    assert "[1] 试用期规定 — 主席令第七十三号 · probation-zh" in out
    assert "Traceback" not in result.stderr
