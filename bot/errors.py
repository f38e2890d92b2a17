"""GradGuide's exceptions, all in one tree::

    GradGuideError
    ├── ConfigError                 a setting is invalid or a plugin is not installed
    ├── EmbeddingError              the embedding model failed (remote server down, bad reply)
    └── KnowledgeBaseError
        ├── IndexUnavailableError   the vector store cannot be reached
        ├── DocumentNotFoundError   no document with that id
        └── IngestError             one input file was refused; carries the path and a reason
            ├── UnsupportedFileError    unknown extension
            ├── FileTooLargeError       over GRADGUIDE_MAX_FILE_MB
            │   └── InflatedTooLargeError   unpacks past GRADGUIDE_MAX_INFLATED_MB (a zip bomb)
            ├── EmptyFileError          no bytes, or no text after extraction
            ├── BinaryFileError         not text (NUL bytes, control characters)
            ├── EncodingError           text that is not UTF-8
            ├── CorruptFileError        a PDF/DOCX that cannot be parsed
            ├── EncryptedFileError      a PDF that needs a password, an encrypted DOCX
            ├── MetadataError           a required field is missing or has the wrong type
            └── DuplicateIdError        two files in one batch claim the same id
    ├── StorageError                the database cannot be reached or refused a write
    └── ChannelError                a messaging channel failed
        ├── TelegramConfigError     no bot token, or Telegram rejected it
        └── UpdateNotClaimed        the database could not record an update: not processed now
                                    (a webhook answers 503: Telegram delivers it again)

Channels catch ``GradGuideError`` and show its message; anything else is a bug.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


class GradGuideError(Exception):
    """Base class: the message is meant for a person (admin or developer)."""


class ConfigError(GradGuideError):
    pass


class EmbeddingError(GradGuideError):
    pass


class StorageError(GradGuideError):
    pass


class ChannelError(GradGuideError):
    pass


class TelegramConfigError(ChannelError):
    pass


class UpdateNotClaimed(ChannelError):
    """Without its claim (once only, one at a time per chat) an update is not processed.
    In webhook mode it is tried again, then the webhook answers 503 and Telegram delivers
    it again (``bot.channels.telegram.webhook``); in long polling it is lost."""


class KnowledgeBaseError(GradGuideError):
    pass


class IndexUnavailableError(KnowledgeBaseError):
    pass


class DocumentNotFoundError(KnowledgeBaseError):
    def __init__(self, doc_id: str) -> None:
        super().__init__(f"no document with id {doc_id!r}")
        self.doc_id = doc_id


class IngestError(KnowledgeBaseError):
    """A file was refused. ``str(err)`` names the file and the reason."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


class UnsupportedFileError(IngestError):
    pass


class FileTooLargeError(IngestError):
    pass


class EmptyFileError(IngestError):
    pass


class BinaryFileError(IngestError):
    pass


class EncodingError(IngestError):
    pass


class InflatedTooLargeError(FileTooLargeError):
    """Small on disk, too large unpacked (``bot.kb.unpack``); the reason is in zh and en."""


class CorruptFileError(IngestError):
    pass


class EncryptedFileError(IngestError):
    """The reason (zh and en) says to remove the password and upload the file again."""


class MetadataError(IngestError):
    """One or more metadata fields are missing or invalid: ``field`` is the first,
    ``fields`` all of them; ``hint`` (what was derived from the file, and what to add) is
    appended to the message."""

    def __init__(
        self,
        path: Path | str,
        field: str,
        reason: str,
        *,
        more: Sequence[tuple[str, str]] = (),
        hint: str = "",
        derived: Mapping[str, str] | None = None,
    ) -> None:
        problems = [(field, reason), *more]
        text = "; ".join(f"metadata field {name!r}: {why}" for name, why in problems)
        super().__init__(path, f"{text}\n{hint}" if hint else text)
        self.field = field
        self.fields = [name for name, _ in problems]
        self.derived = dict(derived or {})
        """What was derived from the file for fields it did not give."""


class DuplicateIdError(IngestError):
    pass
