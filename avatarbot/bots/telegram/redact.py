"""Keep the bot token out of every log line.

PTB and httpx put the token in URLs (`.../bot<token>/getUpdates`) and log them: httpx at INFO,
PTB at DEBUG. A filter on one logger misses records from its children, and a handler filter
misses handlers added later, so we hook the record factory: every record, from any logger,
is scrubbed once when it is created, traceback text included.
"""

from __future__ import annotations

import logging

REPLACEMENT = "<telegram-token>"

_secrets: set[str] = set()
_installed = False


def redact(text: str) -> str:
    for secret in _secrets:
        text = text.replace(secret, REPLACEMENT)
    return text


def install(secret: str) -> None:
    """Scrub `secret` from all log records created from now on (idempotent)."""
    global _installed
    if secret:
        _secrets.add(secret)
    if _installed:
        return
    make_record = logging.getLogRecordFactory()

    def scrubbing_factory(*args, **kwargs) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        if not _secrets:
            return record
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 (a broken format string is the caller's bug; logging reports it)
            return record
        # Freeze the text now, token or not: arguments are formatted lazily, and PTB logs getFile's
        # result dict and then writes the download URL (token included) into that same dict. A
        # handler that formats later (pytest's caplog, a memory or Sentry handler) would see it.
        record.msg, record.args = redact(message), None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(scrubbing_factory)
    _installed = True
