"""The console's Expire is kept: a ``gradguide kb rebuild`` in another process and a restart
of the console do not bring the document back; the admin can undo it from the console."""

from __future__ import annotations

import datetime as dt

from bot.kb.service import KnowledgeBase
from bot.settings import Settings
from tests.conftest import TODAY, run_gradguide
from tests.web.conftest import Console

QUESTION = "hukou settle graduation contract"


def rebuild(settings: Settings) -> None:
    """`gradguide kb rebuild` from another shell, on the console's index."""
    done = run_gradguide(settings, "kb", "rebuild", env={"GRADGUIDE_EMBEDDING": "hash"})
    assert done.returncode == 0, done.stdout + done.stderr


def restarted(settings: Settings) -> KnowledgeBase:
    return KnowledgeBase.open(settings, clock=lambda: TODAY)


async def test_an_expiry_set_in_the_console_survives_a_rebuild_and_a_restart_until_undone(
    own_console: Console,
) -> None:
    console = own_console
    settings = console.services.settings
    await console.as_user("admin")
    expired = await console.form("/admin/documents", "/admin/documents/hukou-en/expire")
    assert expired.headers["location"].endswith("web_expired")

    rebuild(settings)
    kb = restarted(settings)
    doc = kb.document("hukou-en")
    assert doc.meta.expires == TODAY - dt.timedelta(days=1)
    assert kb.validity(doc).value == "expired"
    assert all(h.doc_id != "hukou-en" for h in kb.search(QUESTION))
    assert all(h.doc_id != "hukou-en" for h in console.services.kb.search(QUESTION))
    listing = (await console.client.get("/admin/documents")).text
    row = listing.split('data-doc="hukou-en"')[1].split("</tr>")[0]
    assert 'class="badge v-expired"' in row
    assert "管理员设置" in row  # the row says the expiry is the admin's, with an undo button

    undone = await console.form("/admin/documents", "/admin/documents/hukou-en/overrides/clear")
    assert undone.headers["location"].endswith("web_overrides_cleared")
    assert console.services.kb.document("hukou-en").meta.expires is None
    rebuild(settings)
    kb = restarted(settings)
    assert kb.validity(kb.document("hukou-en")).value == "active"
    assert any(h.doc_id == "hukou-en" for h in kb.search(QUESTION))
    actions = [e.action for e in await console.services.console.audit_log()]
    assert {"document_expired", "document_overrides_cleared"} <= set(actions)
