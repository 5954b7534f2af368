"""Log output of every process: text lines, or one JSON object per line (PT_LOG_FORMAT=json).
Configured once, by the CLI entry; holds no logger of its own."""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from compute.errors import PlantPulseError

ENV = "PT_LOG_FORMAT"
_OURS = "plantpulse_handler"  # marks the handler configure_logging installed
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# What every LogRecord has; anything else on a record came from `extra=` and is logged as a field.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


class LogFormatError(PlantPulseError):
    """PT_LOG_FORMAT names no known format."""


def log_format(env: Mapping[str, str]) -> LogFormat:
    """The format PT_LOG_FORMAT asks for (text when unset)."""
    raw = env.get(ENV, LogFormat.TEXT).strip().lower() or LogFormat.TEXT
    try:
        return LogFormat(raw)
    except ValueError as e:
        known = [f.value for f in LogFormat]
        raise LogFormatError(f"{ENV}={raw!r} is not a log format; known: {known}") from e


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts (UTC, ISO 8601), level, logger, message, the `extra=`
    fields (site, channel, alert_id, ...), and exc_info as text when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out:
                out[key] = value
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def configure_logging(fmt: LogFormat, level: int = logging.INFO) -> None:
    """Route the root logger to stderr in the chosen format, replacing what an earlier call
    installed. Like logging.basicConfig, it leaves a root logger that something else (a host
    application, a test runner) has already given handlers to that something else."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(old)
    if root.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if fmt is LogFormat.JSON else logging.Formatter(TEXT_FORMAT)
    )
    setattr(handler, _OURS, True)
    root.addHandler(handler)
    root.setLevel(level)
