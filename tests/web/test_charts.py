"""The console's SVG charts: they fill the width they are given, and a legend's entries never
run into each other (Chinese names are twice as wide as Latin ones)."""

from __future__ import annotations

import re

from bot.web.charts import bars, text_width


def test_a_chart_scales_to_its_container() -> None:
    svg = str(bars(["周一", "周二"], [("问题", [3, 4])], "每日"))
    assert 'viewBox="0 0 640 220"' in svg and 'class="chart wide"' in svg
    assert not re.search(r'<svg[^>]* width="\d', svg), "no fixed pixel width"


def test_legend_entries_do_not_overlap() -> None:
    names = ["机器人解答", "转人工", "Unanswered questions", "无法回答"]
    svg = str(bars(["周一"], [(name, [1]) for name in names], "每日"))
    starts = [float(x) for x in re.findall(r'<text x="([\d.]+)" y="15" font-size="11">', svg)]
    assert len(starts) == len(names)
    for (start, name), following in zip(zip(starts, names, strict=True), starts[1:], strict=False):
        assert following >= start + text_width(name, 11), (name, start, following)
    assert text_width("机器人解答", 11) > text_width("robot", 11)
