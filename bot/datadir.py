"""Is the data directory (GRADGUIDE_DATA_DIR) usable? Checked by the commands that keep
their index, caches, uploads or database there, before they start, so that a directory that
is a file, cannot be made, or is read-only is one clear line rather than a traceback from
deep inside Chroma or SQLite.

Race: the directory may change after the check (another process removes it, a volume is
remounted read-only). What fails then is an ``OSError`` from wherever the write happens;
the command line reports it, too, in one line (``bot.cli``).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from bot.prompts import Messages


class DataDirProblem(Enum):
    NONE = "none"
    IS_A_FILE = "is_a_file"
    """The path is a regular file (or another non-directory)."""
    UNDER_A_FILE = "under_a_file"
    """A parent on the path is a file: the directory can never be made."""
    NOT_WRITABLE = "not_writable"
    """It exists but nothing can be written in it (permissions, a read-only mount)."""
    CANNOT_CREATE = "cannot_create"
    """Making it failed for another reason (permissions on the parent, a read-only mount)."""


@dataclass(frozen=True)
class DataDirCheck:
    path: Path
    problem: DataDirProblem
    blocker: Path | None = None
    """UNDER_A_FILE: the file in the way."""
    detail: str = ""
    """The operating system's words (NOT_WRITABLE, CANNOT_CREATE)."""

    def message(self, messages: Messages) -> str:
        """One line, in Chinese and in English ("zh / en"): the directory and what is wrong."""
        keys = {
            DataDirProblem.IS_A_FILE: "data_dir_is_file",
            DataDirProblem.UNDER_A_FILE: "data_dir_under_file",
            DataDirProblem.NOT_WRITABLE: "data_dir_not_writable",
            DataDirProblem.CANNOT_CREATE: "data_dir_cannot_create",
        }
        if self.problem is DataDirProblem.NONE:
            return ""
        texts = []
        for lang in ("zh", "en"):
            reason = messages.get(
                keys[self.problem], lang, blocker=self.blocker, detail=self.detail
            )
            texts.append(messages.get("data_dir_unusable", lang, path=self.path, reason=reason))
        return " / ".join(texts)


def check_data_dir(path: Path) -> DataDirCheck:
    """Make the directory if it is missing, and try writing a file in it (removed again)."""
    path = path.absolute()
    if path.exists() and not path.is_dir():
        return DataDirCheck(path, DataDirProblem.IS_A_FILE)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = _file_in_the_way(path)
        if blocker is not None:
            return DataDirCheck(path, DataDirProblem.UNDER_A_FILE, blocker=blocker)
        return DataDirCheck(path, DataDirProblem.CANNOT_CREATE, detail=_words(exc))
    try:
        handle, probe = tempfile.mkstemp(prefix=".write-check-", dir=path)
    except OSError as exc:
        return DataDirCheck(path, DataDirProblem.NOT_WRITABLE, detail=_words(exc))
    os.close(handle)
    Path(probe).unlink(missing_ok=True)
    return DataDirCheck(path, DataDirProblem.NONE)


def os_error_message(exc: OSError, messages: Messages) -> str:
    """One line, "zh / en", for a file-system error met after the check: the path and
    what is wrong with it."""
    path = Path(str(exc.filename))
    texts = []
    for lang in ("zh", "en"):
        if isinstance(exc, (FileExistsError, NotADirectoryError)) and path.is_file():
            detail = messages.get("data_dir_is_file", lang)
        else:
            detail = _words(exc)
        texts.append(messages.get("file_system_error", lang, path=path, detail=detail))
    return " / ".join(texts)


def _file_in_the_way(path: Path) -> Path | None:
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def _words(exc: OSError) -> str:
    return exc.strerror or str(exc)
