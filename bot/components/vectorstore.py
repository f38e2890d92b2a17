"""The Chroma client: embedded and persistent by default, a Chroma server when configured."""

from __future__ import annotations

from urllib.parse import urlparse

import chromadb
from chromadb.api import ClientAPI
from chromadb.config import Settings as ChromaSettings

from bot.errors import IndexUnavailableError
from bot.settings import Settings


def open_chroma(settings: Settings) -> ClientAPI:
    """Open the client named by the settings (``GRADGUIDE_CHROMA_URL`` or the data dir)."""
    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.chroma_url is None:
        settings.chroma_path.mkdir(parents=True, exist_ok=True)
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
