"""What a graduate's media message carries, as the ticket's attachments keep it."""

from __future__ import annotations

from typing import Any

from telegram import Message


def attachment_of(message: Message) -> dict[str, Any] | None:
    """The file a graduate's message carries, as ``ConsoleStore.add_attachment`` takes it
    (kind, file ids, name, MIME type, size; the largest size of a photo), or None (a
    location, a contact, a poll: nothing to fetch)."""
    media: Any
    mime: str | None
    if message.photo:
        media = max(message.photo, key=lambda size: (size.width * size.height, size.file_size or 0))
        kind, mime = "photo", "image/jpeg"  # Telegram re-encodes every photo as JPEG
    elif message.sticker is not None:
        media = message.sticker
        kind = "sticker"
        if media.is_animated:
            mime = "application/x-tgsticker"
        else:
            mime = "video/webm" if media.is_video else "image/webp"
    else:
        # an animation (GIF) also comes as a document: look at it first
        kinds = ("animation", "video_note", "voice", "audio", "video", "document")
        kind = next((k for k in kinds if getattr(message, k) is not None), "")
        if not kind:
            return None
        media = getattr(message, kind)
        default = {"voice": "audio/ogg", "audio": "audio/mpeg", "document": None}
        mime = getattr(media, "mime_type", None) or default.get(kind, "video/mp4")
    return {
        "kind": kind,
        "file_id": media.file_id,
        "file_unique_id": media.file_unique_id,
        "file_name": getattr(media, "file_name", None),
        "mime_type": mime,
        "file_size": media.file_size,
    }
