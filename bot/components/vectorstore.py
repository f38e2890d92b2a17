"""The Chroma client: embedded and persistent by default, a Chroma server when configured."""

from __future__ import annotations

import contextlib
import threading
from urllib.parse import urlparse

import chromadb
from chromadb.api import ClientAPI
from chromadb.api.shared_system_client import SharedSystemClient
from chromadb.config import Settings as ChromaSettings

from bot.errors import IndexUnavailableError
from bot.settings import Settings

_opening = threading.Lock()


def open_chroma(settings: Settings, *, own_state: bool = False) -> ClientAPI:
    """Open the client named by the settings (``GRADGUIDE_CHROMA_URL`` or the data dir).

    Embedded, chromadb gives every client of a path in one process the same state, vectors
    loaded in memory included. With ``own_state`` the client gets state of its own, read from
    disk when first used, so it sees what other processes wrote until then (``KnowledgeIndex``
    explains why it needs that).
    """
    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.chroma_url is None:
        settings.chroma_path.mkdir(parents=True, exist_ok=True)
        with _opening:
            if own_state:  # chromadb keys its per-process state by the path as given
                SharedSystemClient._identifier_to_system.pop(str(settings.chroma_path), None)
            return chromadb.PersistentClient(path=settings.chroma_path, settings=chroma_settings)
    url = urlparse(settings.chroma_url)
    host = url.hostname or "localhost"
    ssl = url.scheme == "https"
    port = url.port or (443 if ssl else 8000)
    try:
        return chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=chroma_settings)
    except Exception as exc:
        raise IndexUnavailableError(
            f"cannot reach the Chroma server at {settings.chroma_url}: {exc}"
        ) from exc


def release_chroma(client: ClientAPI) -> None:
    """Free an embedded client's state (vectors in memory, threads) now rather than at
    Python's next full garbage collection, which can be hundreds of megabytes later in a
    long-running process. Neither the client nor its collections may be used afterwards."""
    server = getattr(client, "_server", None)  # chromadb's own object behind the client
    with contextlib.suppress(AttributeError):  # already released
        if server is not None:
            server.stop()
