"""An admin's document whose id another file's document already has is refused in Telegram,
naming that document and its file, unless it is sent with the caption "替换" / "replace"
(over real HTTP against the fake Bot API). The shared knowledge base is left as it was."""

from __future__ import annotations

import pytest

from tests.channels.conftest import ADMIN, Bot
from tests.channels.test_admins import doc_ids, removed_afterwards, shown
from tests.fakes.telegram_server import FakeTelegram

DOC_ID = "test-replace-zh"


def document(amount: str) -> bytes:
    return f"""---
id: {DOC_ID}
title: 星河市见习补贴（测试文档）
lang: zh
authority: 星河市人力资源和社会保障局
issued: 2025-03-01
region: national
---

# 星河市见习补贴

## 标准

星河市见习补贴每人每月{amount}元。
""".encode()


@pytest.mark.parametrize("stack", ["polling-sqlite"], indirect=True)
async def test_a_document_with_a_taken_id_replaces_it_only_with_the_replace_caption(
    tg: FakeTelegram, bot: Bot
) -> None:
    admin = tg.user(ADMIN, "Admin", language_code="zh", started=True)
    kb = bot.services.kb
    bundled = kb.document("probation-zh")
    async with removed_afterwards(kb, DOC_ID):
        mark = tg.mark()
        tg.send_document(admin, f"{DOC_ID}.md", document("1111"), "text/markdown")
        await tg.await_for(chat=ADMIN, since=mark, text="导入完成", timeout=60)
        first = kb.document(DOC_ID)

        # the same id in another file: refused, the admin is told which document has it
        await tg.await_idle()
        mark = tg.mark()
        tg.send_document(admin, "v2.md", document("2222"), "text/markdown")
        refused = await tg.await_for(chat=ADMIN, since=mark, text="没有导入", timeout=60)
        text = refused.text or ""
        assert DOC_ID in text and "星河市见习补贴（测试文档）" in text
        assert first.source in text and "替换" in text
        assert kb.document(DOC_ID).version == first.version

        # a bundled document's id too
        probation = document("3333").replace(DOC_ID.encode(), b"probation-zh")
        await tg.await_idle()
        mark = tg.mark()
        tg.send_document(admin, "probation.md", probation, "text/markdown")
        refused = await tg.await_for(chat=ADMIN, since=mark, text="没有导入", timeout=60)
        assert bundled.source in (refused.text or "")
        assert kb.document("probation-zh").version == bundled.version

        # with the caption, it replaces
        await tg.await_idle()
        mark = tg.mark()
        tg.send_document(admin, "v2.md", document("2222"), "text/markdown", caption="替换")
        done = await tg.await_for(chat=ADMIN, since=mark, text="导入完成", timeout=60)
        assert done.text == shown(
            bot, "adm_ingest_done", "zh", added=0, updated=1, unchanged=0, failed=0
        )
        assert any("2222" in text for _, text in kb.chunks_of(DOC_ID))
        assert kb.document(DOC_ID).source != first.source
    assert DOC_ID not in doc_ids(kb)
