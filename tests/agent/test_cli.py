"""The graduate-facing commands: ``ask`` (one question, or a JSON-lines batch) and ``chat``."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from bot.agent.curated import CardForm, build_card
from bot.kb.cards import CuratedCard
from bot.prompts import Messages
from bot.settings import Settings
from bot.storage import Database, Store
from bot.storage.console_store import ConsoleStore
from tests.agent.conftest import PROBATION_ZH, write_probation_docs
from tests.conftest import DocWriter, run_cli, run_gradguide

MESSAGES = Messages.load()
REPLY_KEYS = {
    "answer",
    "lang",
    "intent",
    "citations",
    "handoff",
    "handoff_reason",
    "confidence",
    "latency_ms",
}
CITATION_KEYS = {"doc_id", "title", "authority", "doc_number", "source_url", "excerpt"}


@pytest.fixture
def docs(env: Settings, write_doc: DocWriter) -> Settings:
    """A knowledge folder with the probation rules (zh, en) and a general wage rule."""
    write_probation_docs(write_doc)
    write_doc(
        "wages-zh",
        "# 工资支付\n\n## 工资怎么发\n\n工资应当以货币形式按月支付给劳动者本人，"
        "不得克扣或者无故拖欠劳动者的工资。\n",
        title="工资支付规定",
    )
    return env


def test_ask_json_prints_one_structured_reply(
    docs: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "ask", "试用期最长多久", "--json")
    assert code == 0
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    reply = json.loads(lines[0])
    assert set(reply) == REPLY_KEYS
    assert "六个月" in reply["answer"]
    assert reply["lang"] == "zh"
    assert reply["intent"] == "rights"
    assert reply["handoff"] is False and reply["handoff_reason"] is None
    assert 0 < reply["confidence"] <= 1
    assert isinstance(reply["latency_ms"], int | float) and reply["latency_ms"] >= 0
    citation = reply["citations"][0]
    assert set(citation) == CITATION_KEYS
    assert citation["doc_id"] == "probation-zh"
    assert citation["title"] == "试用期规定"
    assert citation["authority"] == "测试机关"
    assert citation["doc_number"] == "中华人民共和国主席令第七十三号"
    assert citation["source_url"] == "https://flk.npc.gov.cn/"
    assert "六个月" in citation["excerpt"]


def test_ask_json_reports_a_crisis_as_a_handoff(
    docs: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "ask", "我不想活了", "--json")
    assert code == 0
    reply = json.loads(out)
    assert reply["intent"] == "crisis"
    assert reply["handoff"] is True and reply["handoff_reason"] == "crisis"
    assert reply["citations"] == []
    assert "12356" in reply["answer"]


def write_jsonl(path: Path, rows: list[object]) -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row, ensure_ascii=False) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_ask_jsonl_keeps_conversations_apart(
    docs: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = write_jsonl(
        tmp_path / "batch.jsonl",
        [
            {"id": "q1", "question": "试用期最长多久？", "conversation_id": "wx-1"},
            {"id": "q2", "question": "How long can probation last?"},
            {"id": "q3", "question": "那工资呢？", "conversation_id": "wx-1"},
        ],
    )
    code, out, err = run_cli(capsys, "ask", "--jsonl", str(batch))
    assert code == 0, err
    replies = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert [r["id"] for r in replies] == ["q1", "q2", "q3"]
    assert all(set(r) == REPLY_KEYS | {"id"} for r in replies)
    assert "六个月" in replies[0]["answer"]
    assert replies[1]["lang"] == "en" and "six months" in replies[1]["answer"]
    # "那工资呢？" continues the probation conversation: probation pay, not wages in general.
    assert replies[2]["citations"][0]["doc_id"] == "probation-zh"
    assert "百分之八十" in replies[2]["answer"]


def test_ask_jsonl_reports_bad_lines_and_answers_the_rest(
    docs: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = write_jsonl(
        tmp_path / "batch.jsonl",
        [
            {"id": "q1", "question": "试用期最长多久？"},
            "this is not json",
            {"question": "an id is missing"},
            {"id": "q4", "question": "How long can probation last?"},
        ],
    )
    code, out, err = run_cli(capsys, "ask", "--jsonl", str(batch))
    assert code == 1
    replies = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert [r["id"] for r in replies] == ["q1", "q4"]
    assert "六个月" in replies[0]["answer"] and "six months" in replies[1]["answer"]
    assert "line 2" in err and "line 3" in err
    assert "Traceback" not in err


def test_chat_sets_region_and_language_and_answers_in_english(docs: Settings) -> None:
    result = run_gradguide(
        docs, "chat", stdin="/region 上海\n/lang en\n试用期最长多久\n/reset\n/quit\n"
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    out = result.stdout
    assert (
        MESSAGES.get("region_set", "zh", region="上海") in out
        or MESSAGES.get("region_set", "en", region="上海") in out
    )
    assert MESSAGES.get("lang_set", "en") in out
    answer = out.split(MESSAGES.get("lang_set", "en"), 1)[1]
    assert "Sources: " in answer and "依据：" not in answer, "the answer is framed in English"
    assert "six months" in answer or "六个月" in answer
    assert MESSAGES.get("reset_done", "en") in out


def test_chat_confirms_a_chinese_region_in_chinese(
    docs: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("/region 上海\n/quit\n"))
    code, out, _ = run_cli(capsys, "chat")
    assert code == 0
    assert MESSAGES.get("region_set", "zh", region="上海") in out


CURATED = "试用期工资最少是约定工资的八成，也不能低于当地最低工资。"
CURATED_EN = "Probation pay is at least 80% of the agreed wage, and never below the local minimum."


async def approve_card(settings: Settings) -> None:
    """A counsellor's answer, approved in the console as an answer card, in the bot's
    database (the default SQLite file in the data dir)."""
    built = build_card(
        1,
        CardForm(
            question={"zh": "试用期工资可以打几折", "en": "How much can probation pay be cut?"},
            answer={"zh": CURATED, "en": CURATED_EN},
            doc_id="probation-zh",
            quote="试用期工资不得低于劳动合同约定工资的百分之八十",
        ),
        {"probation-zh": [PROBATION_ZH]},
    )
    assert isinstance(built, CuratedCard), built
    async with Database.from_settings(settings) as database:
        await database.migrate()
        console = ConsoleStore(Store(database))
        number = await console.propose_curated(
            "试用期工资可以打几折", CURATED, "zh", "probation-zh", ticket_id=None, proposed_by=None
        )
        admin = await console.add_account("admin", "Admin", "admin", "not-a-login")
        assert await console.decide_curated(
            number, "approved", admin.id, card=built.model_dump_json()
        )


async def test_ask_and_chat_answer_from_a_card_approved_in_the_console(
    docs: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    question = "试用期工资公司能打几折？"
    code, out, _ = run_cli(capsys, "ask", question, "--json")
    assert code == 0 and CURATED not in json.loads(out)["answer"]

    await approve_card(docs)
    code, out, _ = run_cli(capsys, "ask", question, "--json")
    reply = json.loads(out)
    assert code == 0 and reply["answer"].startswith(CURATED), reply["answer"]
    assert reply["citations"][0]["doc_id"] == "probation-zh"

    chat = run_gradguide(docs, "chat", stdin="How much can my probation pay be cut?\n/quit\n")
    assert chat.returncode == 0, chat.stderr
    assert CURATED_EN in chat.stdout
