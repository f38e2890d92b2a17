"""The web process's logs without personal data.

``gradguide web`` runs uvicorn with ``log_config=None``: uvicorn then adds no handlers of
its own, and its loggers (``uvicorn.error`` and the access log ``uvicorn.access``) reach the
root logger's handlers, which carry ``RedactingFilter`` like every other log line of the
process. Uvicorn's own handlers (its default ``LOGGING_CONFIG``) would bypass that filter,
and the access log holds the URL with its query string: hit testing puts the question
there, and with it any phone or ID number the admin typed.

An access log line gives the URL as sent, percent-encoded, where a phone number written
``+86 138 1234 5678`` reads ``%2B86+138+1234+5678`` and slips past the patterns.
``AccessLogRedaction`` (on the ``uvicorn.access`` logger) decodes the URL, redacts it, and
if anything was found writes the redacted URL back, encoded again (so that a decoded line
break cannot forge a log line).
"""

from __future__ import annotations

import logging
from urllib.parse import quote, unquote_plus

from bot.privacy import install_log_redaction, redact
from bot.settings import Settings

ACCESS_LOGGER = "uvicorn.access"
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
_URL_SAFE = "/?&=:@!$'()*,;[]~"
_PATH_ARG = 2
"""uvicorn's access record: (client address, method, path with query, HTTP version, status)."""


def redact_url(url: str) -> str:
    """``url`` with personal data replaced, or ``url`` itself when there is none."""
    decoded = unquote_plus(url, errors="replace")
    cleaned = redact(decoded)
    return url if cleaned == decoded else quote(cleaned, safe=_URL_SAFE)


class AccessLogRedaction(logging.Filter):
    """Redacts the URL of uvicorn's access records (see the module docstring); the record
    keeps its shape, so uvicorn's own ``AccessFormatter`` would still format it."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) > _PATH_ARG:
            url = args[_PATH_ARG]
            if isinstance(url, str):
                record.args = (*args[:_PATH_ARG], redact_url(url), *args[_PATH_ARG + 1 :])
        return True


def configure_web_logging(settings: Settings) -> None:
    """Every log sink of the web process redacts: the root logger's handlers (set up by the
    command line; made here if there are none, so nothing falls to Python's last-resort
    handler) get ``RedactingFilter``, the access log ``AccessLogRedaction``. Run it before
    uvicorn starts, and start uvicorn with ``log_config=None``. Calling it twice adds
    nothing twice."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=settings.log_level, format=LOG_FORMAT)
    install_log_redaction()
    access = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, AccessLogRedaction) for f in access.filters):
        access.addFilter(AccessLogRedaction())
