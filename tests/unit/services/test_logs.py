"""PT_LOG_FORMAT: text by default; json gives one parsable object per line with the extra fields."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from services.cli import main
from services.logs import JsonFormatter, LogFormat, LogFormatError, configure_logging, log_format


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_the_format_comes_from_the_environment() -> None:
    assert log_format({}) is LogFormat.TEXT
    assert log_format({"PT_LOG_FORMAT": "JSON"}) is LogFormat.JSON
    with pytest.raises(LogFormatError, match="PT_LOG_FORMAT='xml' is not a log format"):
        log_format({"PT_LOG_FORMAT": "xml"})


def test_a_json_line_parses_and_carries_the_fields() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("plantpulse.test_logs")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning(
            "limit exceeded on %s", "cr1", extra={"site": "sh", "channel": "cr1.dp", "alert_id": 7}
        )
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    first, second = (json.loads(line) for line in out.getvalue().splitlines() if line[0] == "{")
    assert first["level"] == "WARNING" and first["logger"] == "plantpulse.test_logs"
    assert first["message"] == "limit exceeded on cr1"
    assert (first["site"], first["channel"], first["alert_id"]) == ("sh", "cr1.dp", 7)
    assert first["ts"].endswith("+00:00")
    assert second["message"] == "failed" and "ValueError: boom" in second["exc_info"]


def test_configure_logging_replaces_the_root_handlers(restore_root: None) -> None:
    logging.getLogger().handlers[:] = []  # a fresh process
    configure_logging(LogFormat.JSON)
    (handler,) = logging.getLogger().handlers
    assert isinstance(handler.formatter, JsonFormatter)
    configure_logging(LogFormat.TEXT)
    (handler,) = logging.getLogger().handlers
    assert not isinstance(handler.formatter, JsonFormatter)


def test_configure_logging_leaves_a_host_s_handlers_alone(restore_root: None) -> None:
    host = logging.NullHandler()
    logging.getLogger().handlers[:] = [host]
    configure_logging(LogFormat.JSON)
    assert logging.getLogger().handlers == [host]


def test_the_cli_refuses_an_unknown_format(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], restore_root: None
) -> None:
    monkeypatch.setenv("PT_LOG_FORMAT", "xml")
    assert main(["check-config", "nonexistent.yaml"]) == 2
    assert "PT_LOG_FORMAT='xml'" in capsys.readouterr().err
