"""The console's staging folder: an upload waits here between its preview and its commit.

Each upload has a folder named by a random token (``data/uploads/web-staging/<token>/``)
holding the file, under a name that is always a plain file name inside that folder, and, when
the admin came from a document's Replace button, a ``.replace`` note naming that document. A
preview that fails on the file itself (unreadable, unsupported) removes its folder; one that
fails on the metadata keeps it, so the admin can fill in what is missing. Folders left behind
(an admin who walked away) are removed once they are ``STALE_AFTER_S`` old: when the console
starts and before each new upload.

The race: two requests with one token (a double click on Commit) both find the file; the
first moves it away, and the second then finds no file and is told the upload expired. The
sweep never removes a folder touched within ``STALE_AFTER_S``, so it does not race a preview
under way.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

logger = logging.getLogger(__name__)

STALE_AFTER_S = 24 * 3600.0
"""An upload not committed within a day is abandoned."""
REPLACE_NOTE = ".replace"
TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
_UNSAFE = re.compile(r"[^\w.\-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class NameCheck(StrEnum):
    OK = "ok"
    NOT_A_NAME = "not a name"
    """Empty, ``.``, ``..``, a hidden name (``.md``), or control characters."""


@dataclass(frozen=True)
class FileName:
    check: NameCheck
    name: str = ""


def file_name(sent: str) -> FileName:
    """The name a sent file is kept under: the last part of what the browser sent (some send
    a whole path, with / or \\), with unusual characters made ``_``; refused when it is not a
    plain file name."""
    last = re.split(r"[/\\]", sent.strip())[-1].strip()
    if not last or last.startswith(".") or _CONTROL.search(last):
        return FileName(NameCheck.NOT_A_NAME)
    safe = _UNSAFE.sub("_", last)
    if len(safe) > 120:
        stem, dot, suffix = safe.rpartition(".")
        safe = stem[: 119 - len(suffix)] + dot + suffix if dot and len(suffix) < 10 else safe[:120]
    return FileName(NameCheck.OK, safe)


class Staging:
    def __init__(self, root: Path) -> None:
        self.root = root

    def create(self, token: str) -> Path:
        folder = self.root / token
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def folder(self, token: str) -> Path | None:
        """The folder of an upload under way, or None (a bad or expired token)."""
        if not TOKEN.match(token):
            return None
        folder = self.root / token
        return folder if folder.is_dir() else None

    @staticmethod
    def staged(folder: Path) -> Path | None:
        """The staged file (notes excluded)."""
        files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        return files[0] if files else None

    @staticmethod
    def note_replace(folder: Path, doc_id: str) -> None:
        (folder / REPLACE_NOTE).write_text(doc_id, encoding="utf-8")

    @staticmethod
    def replaces(folder: Path) -> str | None:
        """The document the admin asked to replace (from its Replace button), if any."""
        note = folder / REPLACE_NOTE
        if not note.is_file():
            return None
        return note.read_text(encoding="utf-8").strip() or None

    @staticmethod
    def discard(folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)

    def sweep(self, now: float | None = None) -> int:
        """Remove uploads untouched for ``STALE_AFTER_S``; how many."""
        if not self.root.is_dir():
            return 0
        now = time.time() if now is None else now
        removed = 0
        for entry in self.root.iterdir():
            try:
                touched = max(
                    [entry.stat().st_mtime]
                    + ([p.stat().st_mtime for p in entry.iterdir()] if entry.is_dir() else [])
                )
            except OSError:  # removed meanwhile by another request or process
                continue
            if now - touched <= STALE_AFTER_S:
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed += 1
        if removed:
            logger.info("removed %d abandoned upload(s) from %s", removed, self.root)
        return removed
