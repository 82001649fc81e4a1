"""Keys never reach the server log, not even inside a logged URL.

uvicorn logs every WebSocket handshake with its path and query string (on `uvicorn.error`, so
`--no-access-log` does not stop it), and a browser's WebSocket sends its key as `?token=`. A
filter on uvicorn's loggers rewrites `token=<anything>` in each record to `token=***` before
any handler sees it.
"""

from __future__ import annotations

import logging
import re

_TOKEN = re.compile(r"((?:^|[?&;\s\"'])token=)[^&\s\"']*", re.IGNORECASE)
LOGGERS = ("uvicorn.error", "uvicorn.access", "uvicorn", "taskjet")


def redact_tokens(text: str) -> str:
    return _TOKEN.sub(r"\1***", text)


class TokenRedactingFilter(logging.Filter):
    """Rewrites query tokens in a record's message and arguments; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "token=" in record.msg.lower():
            record.msg = redact_tokens(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_tokens(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


def install() -> None:
    """Put the filter on uvicorn's loggers (once; the app factory may run more than once)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, TokenRedactingFilter) for f in logger.filters):
            logger.addFilter(TokenRedactingFilter())
