"""Closed tickets in the console: a history counsellors can search by summary and filter by
category, rating and period; open tickets are not in it."""

from __future__ import annotations

import re

from tests.web.conftest import GRADUATE, Console


async def test_closed_tickets_are_listed_searchable_and_filtered(console: Console) -> None:
    store = console.store
    wages = await console.graduate_ticket("公司拖欠工资三个月了", category="rights")
    archive = await console.graduate_ticket(
        "档案怎么转到人才中心", telegram_id=GRADUATE + 1, name="李同学", category="procedure"
    )
    still_open = await console.graduate_ticket("试用期多久", telegram_id=GRADUATE + 2)
    await store.claim(wages.id, (await store.cli_counsellor()).id, "cli")
    await store.resolve(wages.id, "cli")
    await store.set_rating(wages.id, 5)
    await store.cancel(archive.id, "graduate")
    console.clock.advance(days=10)

    await console.as_user("chen")
    page = (await console.client.get("/history")).text
    shown = re.findall(r'<tr data-ticket="(\d+)">', page)
    assert shown == [str(archive.id), str(wages.id)]  # newest closed first; open ones not
    assert str(still_open.id) not in shown
    assert "★★★★★" in page and "已解决" in page and "已取消" in page

    found = (await console.client.get("/history?q=拖欠")).text
    assert re.findall(r'<tr data-ticket="(\d+)">', found) == [str(wages.id)]
    rights = (await console.client.get("/history?category=procedure")).text
    assert re.findall(r'<tr data-ticket="(\d+)">', rights) == [str(archive.id)]
    rated = (await console.client.get("/history?rating=5")).text
    assert re.findall(r'<tr data-ticket="(\d+)">', rated) == [str(wages.id)]
    recent = (await console.client.get("/history?days=7")).text
    assert "没有符合条件的已关闭工单" in recent
