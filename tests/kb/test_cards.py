"""Answer cards (``bot.kb.cards``): what an admin is told about a card file, and that the
bundled cards rest on quotes their documents really contain."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.kb.cards import load_cards, main

KNOWLEDGE = Path(__file__).resolve().parents[2] / "knowledge"

GOOD = """\
- id: probation-cap-two-year
  question:
    zh: 两年的合同试用期最长多久？
    en: How long can probation be on a two-year contract?
  variants:
    zh:
      - 两年合同试用期几个月
      - 签两年试用期能约三个月吗
      - 合同2年试用期最多多久
      - 两年期合同试用期上限
      - 我合同两年 试用期给我三个月合法吗
      - 两年合同试用期多长
    en:
      - two year contract probation length
      - Can probation be 3 months on a 2-year contract?
      - max probation for 2 years contract
      - 2-yr contract how long probation
      - my contract is two years and probation three months, legal?
      - probation cap two years
  answer:
    zh: 合同期一年以上不满三年的，试用期最长二个月。
    en: For a contract of one to three years, probation is at most two months.
  evidence:
    - doc: probation-zh
      quote: "一年以上、不满三年 | 不超过二个月"
  calculator: probation_cap
"""


@pytest.fixture()
def knowledge(tmp_path: Path) -> Path:
    root = tmp_path / "knowledge"
    for lang in ("zh", "en"):
        shutil.copytree(KNOWLEDGE / lang, root / lang)
    (root / "cards").mkdir()
    return root


def test_a_card_quoting_a_table_row_is_accepted(knowledge: Path) -> None:
    (knowledge / "cards" / "probation.yaml").write_text(GOOD, encoding="utf-8")
    cards, errors = load_cards(knowledge)
    assert errors == []
    assert [c.id for c in cards] == ["probation-cap-two-year"]
    assert cards[0].answer.get("en").startswith("For a contract")
    assert cards[0].calculator == "probation_cap"


def test_a_quote_the_document_does_not_contain_is_named(knowledge: Path) -> None:
    invented = GOOD.replace("一年以上、不满三年 | 不超过二个月", "试用期最长三个月")
    (knowledge / "cards" / "probation.yaml").write_text(invented, encoding="utf-8")
    _, errors = load_cards(knowledge)
    assert [str(e) for e in errors] == [
        f"{knowledge / 'cards' / 'probation.yaml'}: probation-cap-two-year: "
        "quote not found in probation-zh: 试用期最长三个月"
    ]


def test_missing_language_few_variants_and_duplicate_ids_are_each_reported(
    knowledge: Path,
) -> None:
    broken = GOOD.replace("    en: For a contract of one to three years", "    fr: Pour un contrat")
    (knowledge / "cards" / "a.yaml").write_text(broken, encoding="utf-8")
    (knowledge / "cards" / "b.yaml").write_text(GOOD, encoding="utf-8")
    short = GOOD.replace("probation-cap-two-year", "other-card").replace(
        "      - 两年合同试用期多长\n", ""
    )
    (knowledge / "cards" / "c.yaml").write_text(short, encoding="utf-8")
    _, errors = load_cards(knowledge)
    messages = [e.message for e in errors]
    assert any(m.startswith("answer.en: Field required") for m in messages), messages
    assert any(m.startswith("variants.zh: List should have at least 6") for m in messages)
    assert not any("already used" in m for m in messages)  # a.yaml's card did not load
    (knowledge / "cards" / "a.yaml").write_text(GOOD, encoding="utf-8")
    _, errors = load_cards(knowledge)
    assert any(e.message.startswith("id already used in") for e in errors)


def test_a_file_that_is_not_yaml_is_reported_not_raised(
    knowledge: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (knowledge / "cards" / "bad.yaml").write_text("- id: x\n  question: {zh: 什么?: }\n")
    assert main([str(knowledge)]) == 1
    out = capsys.readouterr().out
    assert "bad.yaml: -: cannot read the file" in out
    assert "0 cards read, 1 errors" in out


def test_the_bundled_cards_are_valid() -> None:
    cards, errors = load_cards(KNOWLEDGE)
    assert [str(e) for e in errors] == []
    if (KNOWLEDGE / "cards").is_dir() and any((KNOWLEDGE / "cards").glob("*.yaml")):
        assert cards
