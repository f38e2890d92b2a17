"""Personal data out of logs, analytics and what the bot stores: ID numbers, phone numbers,
e-mail, bank cards (every layer may use it: the storage layer redacts before it writes)."""

from __future__ import annotations

import logging
import re

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # ASCII letters only (re.ASCII: \w is [A-Za-z0-9_]): Chinese characters are word
    # characters to Python, and "邮箱zhang@example.com" must keep 邮箱. (The look-behind
    # starts a match only where an address can start: without it a long run of letters
    # with no "@" is rescanned from every position, quadratic in its length.)
    (re.compile(r"(?<![\w.%+-])[\w.%+-]+@[\w-]+(?:\.[\w-]+)+", re.ASCII), "[email]"),
    # 18-digit resident ID (last character may be X), before bank cards and phones
    (re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)"), "[id-number]"),
    (re.compile(r"(?<!\d)\d{15}(?!\d)"), "[id-number]"),
    # bank cards: 16-19 digits, optionally grouped by spaces or dashes
    (re.compile(r"(?<!\d)(?:\d[ -]?){15,18}\d(?!\d)"), "[bank-card]"),
    # mainland mobile numbers, optionally +86 and separators
    (re.compile(r"(?<!\d)(?:\+?86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}(?!\d)"), "[phone]"),
    # landlines: 0xx(x)-xxxxxxx(x)
    (re.compile(r"(?<!\d)0\d{2,3}[ -]?\d{7,8}(?!\d)"), "[phone]"),
)


def redact(text: str) -> str:
    """Replace personal identifiers with placeholders."""
    for pattern, placeholder in _PATTERNS:
        text = pattern.sub(placeholder, text)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that redacts every record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Format first, then redact the finished text: arguments of any type (numbers,
        # mappings) are covered and the format string never sees a placeholder.
        record.msg = redact(record.getMessage())
        record.args = None
        # A traceback can carry personal data too (an exception's message, the parameters
        # of a failed SQL statement): format it now, redacted; handlers use this text.
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_log_redaction() -> None:
    """Attach the filter to every handler of the root logger."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
