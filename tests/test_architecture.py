"""The package's layering, checked on its import graph (issue 15, section 3).

Every ``import`` of a ``bot`` module counts, at the top of a file or inside a function. The
rules:

- ``bot.kb`` and ``bot.components`` import nothing of the agent, storage, handoff, channels
  or web;
- ``bot.agent`` imports no storage, handoff, channels or web;
- ``bot.storage`` imports only settings, errors, the privacy helpers and the vocabularies
  (``bot.kb.models``, ``bot.handoff.models``: types and constants, no behaviour);
- ``bot.handoff`` imports no channel, no web, no python-telegram-bot and no FastAPI;
- ``bot.channels.telegram`` and ``bot.web`` never import each other.

``bot.root`` (the composition root) may import anything. ``KNOWN`` would list accepted
violations with why (none remain since the handoff service: the console calls it, not the
Telegram channel); the test fails on any new one and on a known one that is gone. No
module is longer than ``MAX_LINES`` except those in ``LONG``, which may not grow (and leave
the list once they are within it).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "bot"
MAX_LINES = 800

KNOWN: dict[tuple[str, str], str] = {}
LONG: dict[str, int] = {}  # e.g. {"bot/x.py": 950}: a long module that may not grow


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> Iterator[str]:
    """The ``bot`` modules (and third-party top-level packages) ``path`` imports."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # "from bot.handoff import models": the submodule
                submodule = f"{node.module}.{alias.name}"
                is_module = (ROOT / Path(*submodule.split("."))).with_suffix(".py").is_file()
                yield submodule if is_module else node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "bot":
        return parts[0]
    if parts[1:2] == ["channels"]:
        return "channels"
    return parts[1] if len(parts) > 1 else "bot"


FORBIDDEN: dict[str, frozenset[str]] = {
    "kb": frozenset({"agent", "storage", "handoff", "channels", "web"}),
    "components": frozenset({"agent", "storage", "handoff", "channels", "web"}),
    "agent": frozenset({"storage", "handoff", "channels", "web"}),
    "handoff": frozenset({"channels", "web", "telegram", "fastapi"}),
    "channels": frozenset({"web"}),
    "web": frozenset({"channels"}),
}
STORAGE_MAY_IMPORT = (
    "bot.storage",
    "bot.settings",
    "bot.errors",
    "bot.privacy",
    "bot.kb.models",
    "bot.handoff.models",
)


def violations() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        source = module_name(path)
        for target in set(imports(path)):
            own, other = layer(source), layer(target)
            if own == "storage":
                allowed = not target.startswith("bot.") or target.startswith(STORAGE_MAY_IMPORT)
                if not allowed:
                    found.add((source, target))
            elif other in FORBIDDEN.get(own, frozenset()):
                found.add((source, target))
    return found


def test_the_layers_import_only_what_their_rules_allow() -> None:
    found = violations()
    new = sorted(found - KNOWN.keys())
    assert not new, f"imports across layers (see this module's docstring): {new}"
    gone = sorted(KNOWN.keys() - found)
    assert not gone, f"no longer imported: take them off KNOWN: {gone}"


def test_the_rules_catch_a_forbidden_import(tmp_path: Path) -> None:
    """The checker itself: an agent module importing storage is reported."""
    assert layer("bot.channels.telegram.desk") == "channels"
    assert layer("bot.storage.store") in FORBIDDEN["agent"]
    assert layer("telegram") in FORBIDDEN["handoff"]
    module = tmp_path / "example.py"
    module.write_text(
        "from bot.handoff import models\ndef f():\n    from bot.storage.store import Store\n",
        encoding="utf-8",
    )
    assert list(imports(module)) == ["bot.handoff.models", "bot.storage.store"]


def test_no_module_is_longer_than_the_limit() -> None:
    too_long = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(ROOT).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > LONG.get(name, MAX_LINES):
            too_long[name] = lines
    assert not too_long, f"over {MAX_LINES} lines (or grown past LONG): {too_long}"
    shrunk = [
        name
        for name in LONG
        if len((ROOT / name).read_text(encoding="utf-8").splitlines()) <= MAX_LINES
    ]
    assert not shrunk, f"within the limit now: take them off LONG: {shrunk}"
