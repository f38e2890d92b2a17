"""Ingest → search finds it → change it → old chunks gone → remove → gone, on embedded
Chroma and on a real Chroma server."""

from __future__ import annotations

import pytest

from bot.kb.chunking import chunk_sections
from bot.kb.index import embedding_text
from bot.kb.loaders import load_file
from bot.kb.models import ParsedDocument
from bot.kb.service import KnowledgeBase
from bot.settings import Settings
from tests.conftest import DocWriter, open_kb

OLD = (
    "## 试用期\n\n劳动合同期限三年以上的，试用期不得超过六个月。同一用人单位只能约定一次试用期。\n"
)
NEW = "## 见习\n\n就业见习期限一般为三至十二个月，见习补贴发给见习单位。\n"


@pytest.fixture(params=["embedded", "server"])
def any_kb(request: pytest.FixtureRequest, settings: Settings) -> KnowledgeBase:
    if request.param == "server":
        url = request.getfixturevalue("chroma_server")
        # The server outlives a test: start from an empty index.
        settings = settings.model_copy(update={"chroma_url": url})
        kb = open_kb(settings)
        for doc in kb.documents():
            kb.remove(doc.meta.id)
        return kb
    return open_kb(settings)


def test_round_trip(any_kb: KnowledgeBase, write_doc: DocWriter) -> None:
    kb = any_kb
    path = write_doc("trial-doc-zh", OLD, title="试用期规定")

    report = kb.ingest([path])
    assert [o.status for o in report.outcomes] == ["added"]
    hits = kb.search("试用期最长多久", k=3)
    assert hits[0].doc_id == "trial-doc-zh"
    assert "六个月" in hits[0].text
    assert hits[0].heading.endswith("试用期")

    # Unchanged: skipped, nothing re-embedded.
    assert [o.status for o in kb.ingest([path]).outcomes] == ["unchanged"]

    # Changed: old chunks replaced, never both.
    write_doc("trial-doc-zh", NEW, title="见习规定")
    assert [o.status for o in kb.ingest([path]).outcomes] == ["updated"]
    texts = [text for _, text in kb.chunks_of("trial-doc-zh")]
    assert texts and all("六个月" not in t for t in texts)
    assert kb.index.count_chunks() == kb.document("trial-doc-zh").chunk_count
    hits = kb.search("见习补贴发给谁", k=5)
    assert hits[0].doc_id == "trial-doc-zh" and "见习" in hits[0].text
    assert all("六个月" not in h.text for h in kb.search("试用期最长多久", k=10))
    assert kb.document("trial-doc-zh").meta.title == "见习规定"

    removed = kb.remove("trial-doc-zh")
    assert removed.meta.id == "trial-doc-zh"
    assert kb.documents() == []
    assert kb.search("见习补贴发给谁") == []
    assert kb.index.count_chunks() == 0


def test_interrupted_replace_never_shows_two_versions(
    kb: KnowledgeBase, write_doc: DocWriter, settings: Settings
) -> None:
    """A crash after the new chunks are written but before the switch leaves readers on the
    old version; the next write collects the orphans."""
    path = write_doc("trial-doc-zh", OLD)
    kb.ingest([path])
    write_doc("trial-doc-zh", NEW)
    parsed: ParsedDocument = load_file(path, max_bytes=10**6)
    # Stage the new version's chunks, then "crash" before activate().
    chunks = chunk_sections(parsed.sections, 500, 80)
    texts = [embedding_text(parsed.meta, c) for c in chunks]
    kb.index.stage_chunks(
        parsed,
        parsed.content_hash(),
        chunks,
        kb.embedder.embed_documents(texts),
        [t.split() for t in texts],
    )

    reader = open_kb(settings)  # another process
    hits = reader.search("就业见习补贴 试用期", k=10)
    assert {h.doc.version for h in hits} == {kb.document("trial-doc-zh").version}
    assert any("六个月" in h.text for h in hits)
    assert all("见习补贴" not in h.text for h in hits)

    assert kb.index.collect_garbage() == len(chunks)
    assert kb.index.count_chunks() == kb.document("trial-doc-zh").chunk_count


def test_collections_are_keyed_by_embedding_model(settings: Settings, write_doc: DocWriter) -> None:
    path = write_doc("trial-doc-zh", OLD)
    open_kb(settings).ingest([path])
    other = open_kb(settings.model_copy(update={"embedding": "hash"}))
    assert other.documents() == [], "a different model must not see the other model's vectors"
    other.ingest([path])
    assert other.search("试用期最长多久")[0].doc_id == "trial-doc-zh"
    assert open_kb(settings).document("trial-doc-zh").chunk_count >= 1


def test_another_process_sees_changes_and_never_a_stale_cache(
    settings: Settings, write_doc: DocWriter
) -> None:
    settings = settings.model_copy(update={"index_refresh_s": 0.0})
    writer, reader = open_kb(settings), open_kb(settings)
    path = write_doc("trial-doc-zh", OLD)
    writer.ingest([path])
    assert "六个月" in reader.search("试用期最长多久")[0].text  # reader caches this snapshot

    write_doc("trial-doc-zh", NEW)
    writer.ingest([path])
    assert "见习" in reader.search("见习补贴发给谁")[0].text
    assert all("六个月" not in h.text for h in reader.search("试用期最长多久", k=10))

    # A fresh process with the same cache files gets the same, current answer.
    assert "见习" in open_kb(settings).search("见习补贴发给谁")[0].text


def test_vectors_warmed_before_another_process_writes_still_find_what_it_wrote(
    settings: Settings, write_doc: DocWriter
) -> None:
    """``gradguide ask`` loads the vectors in the background (``KnowledgeBase.prefetch``):
    a copy loaded before another process's write must not hide what that write added."""
    settings = settings.model_copy(update={"index_refresh_s": 0.0})
    writer, reader = open_kb(settings), open_kb(settings)
    reader.index.warm()  # an empty index: nothing to load, no error
    writer.ingest([write_doc("trial-doc-zh", OLD)])
    reader.index.warm()  # this process's copy holds the first document only
    writer.ingest([write_doc("trainee-doc-zh", NEW)])
    hits = reader.search("见习补贴发给谁", mode="dense", k=1)
    assert [h.doc_id for h in hits] == ["trainee-doc-zh"]


def test_damaged_caches_are_rebuilt(settings: Settings, write_doc: DocWriter) -> None:
    open_kb(settings).ingest([write_doc("trial-doc-zh", OLD)])
    assert open_kb(settings).search("试用期最长多久")[0].doc_id == "trial-doc-zh"
    cache = settings.data_dir / "cache"
    damaged = sorted(p.name for p in cache.glob("*.pickle"))
    assert [name.split("-")[0] for name in damaged] == ["chunks", "usem3"]
    for name in damaged:
        (cache / name).write_bytes(b"not a pickle")
    assert open_kb(settings).search("试用期最长多久")[0].doc_id == "trial-doc-zh"
