"""Structured logging to stderr: logfmt (default) or JSON.

logfmt keeps one event per line with greppable key=value pairs, which is what
journald and log shippers handle best; extra fields passed with
``log.info("msg", extra={"fields": {...}})`` are appended as pairs. The JSON
format (`server.log_format = "json"`) uses logrus' field names (`time`,
`level`, `msg`, `error`) so pipelines built for containerd's and CRI-O's JSON
logs read ours unchanged. The stdlib json module is enough for one object per
line.
"""

from __future__ import annotations

import json
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


def _rfc3339(record: logging.LogRecord) -> str:
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{ts}.{int(record.created % 1 * 1e9):09d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line with logrus' names: time, level, msg, then the fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _rfc3339(record),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for k, v in fields.items():
                entry.setdefault(str(k), v if isinstance(v, int | float | bool | str) or v is None else str(v))
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


FORMATTERS: dict[str, type[logging.Formatter]] = {"text": LogfmtFormatter, "json": JsonFormatter}


def configure(level: str, fmt: str = "text") -> None:
    """Send all logs to stderr in logfmt or JSON at `level` (debug/info/warning/error)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(FORMATTERS[fmt]())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    set_level(level)


def set_level(level: str) -> None:
    """Change the level of every logger we configure (also used by SIGHUP's reload)."""
    root = logging.getLogger()
    root.setLevel(LEVELS[level])
    # grpc and asyncio are chatty at debug and irrelevant to operators.
    logging.getLogger("grpc").setLevel(max(LEVELS[level], logging.INFO))
    logging.getLogger("asyncio").setLevel(max(LEVELS[level], logging.INFO))
