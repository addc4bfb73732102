"""Structured (logfmt) logging to stderr.

logfmt keeps one event per line with greppable key=value pairs, which is what
journald and log shippers handle best; extra fields passed with
``log.info("msg", extra={"fields": {...}})`` are appended as pairs.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _quote(value: Any) -> str:
    text = str(value)
    if text and not any(c in text for c in ' ="\n\t'):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class LogfmtFormatter(logging.Formatter):
    """Formats records as `time=… level=… logger=… msg=… k=v …`."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [
            f"time={ts}.{int(record.msecs):03d}Z",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"msg={_quote(record.getMessage())}",
        ]
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            parts.extend(f"{k}={_quote(v)}" for k, v in fields.items())
        if record.exc_info:
            parts.append(f"error={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


def configure(level: str) -> None:
    """Send all logs to stderr in logfmt at `level` (debug/info/warning/error)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    # grpc and asyncio are chatty at debug and irrelevant to operators.
    logging.getLogger("grpc").setLevel(max(LEVELS[level], logging.INFO))
    logging.getLogger("asyncio").setLevel(max(LEVELS[level], logging.INFO))
