"""Embedding plugins: the HTTP ones run against a small server on loopback."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from bot.components.embeddings import (
    HashEmbedder,
    OllamaEmbedder,
    OpenAIEmbedder,
    QueryBatcher,
    UseM3Embedder,
    build_embedder,
)
from bot.errors import ConfigError, EmbeddingError
from bot.kb.service import KnowledgeBase
from bot.settings import Settings
from tests.conftest import DocWriter, open_kb


def _vector(text: str) -> list[float]:
    """A deterministic 8-dimensional vector that puts texts sharing characters close."""
    vec = np.zeros(8)
    for ch in text:
        vec[ord(ch) % 8] += 1
    return vec.tolist()


class EmbeddingServer:
    """Speaks OpenAI's /v1/embeddings and Ollama's /api/embed; records requests."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.fail = False
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append((self.path, dict(self.headers), body))
                if owner.fail:
                    self.send_response(503)
                    self.end_headers()
                    return
                if self.path == "/v1/embeddings":
                    data = [
                        {"object": "embedding", "index": i, "embedding": _vector(t)}
                        for i, t in reversed(list(enumerate(body["input"])))
                    ]
                    reply: dict[str, Any] = {"object": "list", "data": data, "model": body["model"]}
                elif self.path == "/api/embed":
                    reply = {
                        "model": body["model"],
                        "embeddings": [_vector(t) for t in body["input"]],
                    }
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                payload = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def server() -> Iterator[EmbeddingServer]:
    srv = EmbeddingServer()
    thread = threading.Thread(target=srv.httpd.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def test_openai_compatible_server(server: EmbeddingServer) -> None:
    embedder = OpenAIEmbedder("text-embed-x", server.url + "/v1", "sk-test", timeout_s=5)
    vectors = embedder.embed_documents(["试用期", "probation"])
    assert vectors.shape == (2, 8)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    # rows come back in input order even when the server sends them shuffled
    expected = np.array(_vector("试用期")) / np.linalg.norm(_vector("试用期"))
    np.testing.assert_allclose(vectors[0], expected, rtol=1e-5)
    path, headers, body = server.requests[0]
    assert path == "/v1/embeddings"
    assert body == {"model": "text-embed-x", "input": ["试用期", "probation"]}
    assert headers["Authorization"] == "Bearer sk-test"
    assert embedder.key == "openai-text-embed-x"


def test_openai_base_url_comes_from_the_standard_variable(
    server: EmbeddingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
    monkeypatch.setenv("GRADGUIDE_EMBEDDING", "openai:my-model")
    embedder = build_embedder(Settings())
    embedder.embed_query("hello")
    assert server.requests[0][0] == "/v1/embeddings"


def test_ollama_server(server: EmbeddingServer) -> None:
    embedder = OllamaEmbedder("bge-m3", server.url, timeout_s=5)
    assert embedder.embed_query("档案").shape == (8,)
    assert server.requests[0][0] == "/api/embed"
    assert server.requests[0][2] == {"model": "bge-m3", "input": ["档案"]}
    assert embedder.key == "ollama-bge-m3"


def test_a_failing_server_fails_that_file_not_the_batch(
    server: EmbeddingServer, settings: Settings, write_doc: DocWriter
) -> None:
    settings = settings.model_copy(
        update={"embedding": "ollama:bge-m3", "ollama_base_url": server.url}
    )
    kb: KnowledgeBase = open_kb(settings)
    path = write_doc("probation-zh", "## 试用期\n\n试用期最长六个月。\n")
    server.fail = True
    report = kb.ingest([path])
    assert report.outcomes[0].status == "failed"
    assert "embedding request" in (report.outcomes[0].error or "")
    assert kb.documents() == []
    server.fail = False
    assert kb.ingest([path]).outcomes[0].status == "added"
    assert kb.search("试用期多久")[0].doc_id == "probation-zh"


def test_unknown_model_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown GRADGUIDE_EMBEDDING"):
        build_embedder(Settings(embedding="word2vec"))
    with pytest.raises(EmbeddingError):
        OpenAIEmbedder("m", "http://127.0.0.1:9", None, timeout_s=1).embed_query("x")


def test_bundled_default_is_multilingual_and_offline(settings: Settings) -> None:
    embedder = build_embedder(settings)
    assert isinstance(embedder, UseM3Embedder)
    zh, en, other = embedder.embed_documents(
        ["试用期最长不得超过六个月", "Probation may not exceed six months", "今天天气很好"]
    )
    assert float(zh @ en) > float(zh @ other), "a translation is closer than an unrelated text"
    # the tokenizer cache makes the next start cheaper and gives the same vectors
    again = build_embedder(settings).embed_query("试用期最长不得超过六个月")
    np.testing.assert_allclose(again, zh, rtol=1e-5, atol=1e-6)


def test_questions_asked_at_once_get_their_own_vectors(settings: Settings) -> None:
    """Concurrent questions are embedded together; each caller still gets the vector of
    its own question, the same as when it is asked alone."""
    embedder = build_embedder(settings)
    questions = [f"{topic}怎么办" for topic in ("试用期", "档案", "户口", "三方协议", "欠薪")] + [
        "How long can probation last?",
        "Where do I register my destination?",
        "Is a paid internal referral a scam?",
    ]
    alone = [embedder.embed_query(q) for q in questions]
    results: dict[int, np.ndarray] = {}
    start = threading.Barrier(len(questions))

    def ask(n: int) -> None:
        start.wait()
        results[n] = embedder.embed_query(questions[n])

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(len(questions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for n, vector in enumerate(alone):
        np.testing.assert_allclose(results[n], vector, rtol=1e-4, atol=1e-5)


def test_questions_waiting_for_the_model_share_one_call() -> None:
    batches: list[list[str]] = []

    def encode(texts: list[str]) -> np.ndarray:
        batches.append(texts)
        time.sleep(0.05)  # a busy model: the other questions queue meanwhile
        return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)

    batcher = QueryBatcher(encode)
    texts = ["a" * n for n in range(1, 9)]
    with ThreadPoolExecutor(len(texts)) as pool:
        vectors = list(pool.map(batcher, texts))
    assert len(batches) < len(texts), batches
    for text, vector in zip(texts, vectors, strict=True):
        expected = np.array([len(text), 1.0]) / np.hypot(len(text), 1.0)
        np.testing.assert_allclose(vector, expected, rtol=1e-6)


def test_a_failing_batch_fails_its_callers_and_the_next_question_works() -> None:
    calls: list[list[str]] = []

    def encode(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        if "boom" in texts:
            raise EmbeddingError("model crashed")
        return np.ones((len(texts), 4), dtype=np.float32)

    batcher = QueryBatcher(encode)
    with pytest.raises(EmbeddingError, match="model crashed"):
        batcher("boom")
    np.testing.assert_allclose(batcher("fine"), np.full(4, 0.5, dtype=np.float32))
    assert calls == [["boom"], ["fine"]]


def test_hash_embedder_is_deterministic() -> None:
    a = HashEmbedder().embed_query("劳动合同")
    np.testing.assert_array_equal(a, HashEmbedder().embed_query("劳动合同"))
