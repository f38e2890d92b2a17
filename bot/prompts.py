"""User-facing messages (zh and en for every key).

``prompts/messages.yaml`` holds the agent's and the terminal's messages; ``prompts/telegram.yaml``
the Telegram channel's; ``prompts/web.yaml`` the web console's. A key may be defined once only.
"""

from __future__ import annotations

from pathlib import Path
from string import Formatter
from typing import Any

import yaml

from bot.errors import ConfigError
from bot.kb.models import Lang

BUNDLED_PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
MESSAGE_FILES = ("messages.yaml", "telegram.yaml", "web.yaml", "calculators.yaml")
LANGS: tuple[Lang, ...] = ("zh", "en")


class Messages:
    def __init__(self, table: dict[str, dict[str, str]]) -> None:
        self._table = table

    @classmethod
    def load(cls, directory: Path = BUNDLED_PROMPTS_DIR) -> Messages:
        table: dict[str, dict[str, str]] = {}
        for name in MESSAGE_FILES:
            path = directory / name
            if name != MESSAGE_FILES[0] and not path.exists():
                continue
            for key, texts in _read_table(path).items():
                if key in table:
                    raise ConfigError(f"{path}: message {key!r} is already defined")
                table[key] = texts
        return cls(table)

    def names(self) -> list[str]:
        return sorted(self._table)

    def template(self, key: str, lang: Lang) -> str:
        """The raw text with its {placeholders}."""
        return self._table[key][lang]

    def placeholders(self, key: str, lang: Lang) -> set[str]:
        return {field for _, field, _, _ in Formatter().parse(self._table[key][lang]) if field}

    def get(self, key: str, lang: Lang, **values: object) -> str:
        return self._table[key][lang].format(**values)


def _read_table(path: Path) -> dict[str, dict[str, str]]:
    try:
        # libyaml's loader when PyYAML has it: the message tables load in a tenth of the time,
        # which a new `gradguide ask` process feels
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        raw: Any = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must map message keys to {{zh, en}}")
    for key, texts in raw.items():
        if not isinstance(texts, dict) or any(not texts.get(lang) for lang in LANGS):
            raise ConfigError(f"{path}: message {key!r} needs both zh and en")
    return {str(k): {lang: str(v[lang]) for lang in LANGS} for k, v in raw.items()}
