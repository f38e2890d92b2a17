from __future__ import annotations

import itertools

from bot.kb.chunking import chunk_sections, chunk_text, split_sentences
from bot.kb.loaders import split_sections
from bot.kb.models import Section


def test_sentences_end_at_chinese_and_english_punctuation_not_decimals() -> None:
    text = "试用期最长六个月。工资不低于80%！能否延长？不能；Overtime pays 1.5 times. Really? Yes!"
    assert split_sentences(text) == [
        "试用期最长六个月。",
        "工资不低于80%！",
        "能否延长？",
        "不能；Overtime pays 1.5 times.",
        " Really?",
        " Yes!",
    ]
    assert "".join(split_sentences(text)) == text


def test_a_semicolon_and_abbreviations_do_not_end_a_sentence() -> None:
    text = (
        "三个月以上不满一年的，试用期不得超过一个月；一年以上不满三年的，不得超过二个月。"
        "See Art. 19 of the Labour Contract Law and Circular No. 7 of 2024. Then apply."
    )
    assert split_sentences(text) == [
        "三个月以上不满一年的，试用期不得超过一个月；一年以上不满三年的，不得超过二个月。",
        "See Art. 19 of the Labour Contract Law and Circular No. 7 of 2024.",
        " Then apply.",
    ]


def test_a_long_table_is_cut_between_rows_and_every_part_has_its_header() -> None:
    header = "| 劳动合同期限 | 试用期上限 |\n|---|---|\n"
    line = "| 第{}种期限，写得比较长的一行说明文字 | 不超过{}个月 |\n"
    rows = "".join(line.format(i, i) for i in range(40))
    chunks = chunk_text("试用期上限如下：\n" + header + rows + "以上为法定上限。", 400, 60)
    table_parts = [c for c in chunks if "| 第" in c]
    assert len(table_parts) > 1, "the table is longer than a chunk"
    for part in table_parts:
        table_lines = [line for line in part.splitlines() if line.startswith("|")]
        assert table_lines[:2] == header.strip().split("\n"), part[:60]
    found = [row for row in rows.splitlines() if any(row in part for part in table_parts)]
    assert len(found) == 40, "no row lost or cut in half"


def test_long_text_is_cut_at_sentence_ends_with_overlap() -> None:
    sentences = [f"第{i}条规定的内容是这样的。" for i in range(40)]
    chunks = chunk_text("".join(sentences), max_chars=120, overlap_chars=30)
    assert len(chunks) > 3
    assert all(len(c) <= 120 for c in chunks)
    assert all(c.endswith("。") for c in chunks)
    for previous, current in itertools.pairwise(chunks):
        overlap = max(n for n in range(len(current) + 1) if previous.endswith(current[:n]))
        assert 0 < overlap <= 30, "each chunk starts with the previous one's last sentences"
        assert current[:overlap].endswith("。")
    covered = "".join(chunks)
    assert all(s in covered for s in sentences)


def test_a_sentence_longer_than_the_limit_is_split_hard() -> None:
    chunks = chunk_text("很" * 1000, max_chars=300, overlap_chars=50)
    assert all(len(c) <= 300 for c in chunks)
    assert sum(c.count("很") for c in chunks) >= 1000


def test_chunks_follow_headings_and_carry_the_heading_path() -> None:
    body = (
        "# 试用期\n\n## 期限\n\n最长六个月。\n\n### 例外\n\n三个月以下不得约定。\n\n"
        "## 工资\n\n不低于80%。\n"
    )
    sections = split_sections(body, "试用期")
    assert [s.headings for s in sections] == [
        ["试用期", "期限"],
        ["试用期", "期限", "例外"],
        ["试用期", "工资"],
    ]
    chunks = chunk_sections(sections, 500, 80)
    assert [c.heading_path for c in chunks] == [
        "试用期 > 期限",
        "试用期 > 期限 > 例外",
        "试用期 > 工资",
    ]
    assert [c.index for c in chunks] == [0, 1, 2]


def test_headings_inside_code_fences_are_text() -> None:
    sections = split_sections("## A\n\n```\n# not a heading\n```\n", "T")
    assert len(sections) == 1 and "# not a heading" in sections[0].text


def test_text_without_headings_uses_the_title() -> None:
    assert split_sections("只有正文。", "标题") == [Section(headings=["标题"], text="只有正文。")]
