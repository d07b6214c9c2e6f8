"""What the service logs never carries an API key: the key Debezium's sink puts in the query string
(?api_key=...) is redacted from every access and error line, in every worker."""

from __future__ import annotations

import logging
import re

_KEY = re.compile(r"(api_key=)[^&\s\"']+")
REDACTED = r"\1[redacted]"


class RedactKeys(logging.Filter):
    """Rewrites a record's message and arguments so no api_key value is printed."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = _KEY.sub(REDACTED, record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_KEY.sub(REDACTED, a) if isinstance(a, str) else a for a in record.args)
        return True


def redact_keys() -> None:
    """Install the filter on the server's loggers (once per process)."""
    for name in ("uvicorn.access", "uvicorn.error", "contextlake"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactKeys) for f in logger.filters):
            logger.addFilter(RedactKeys())
