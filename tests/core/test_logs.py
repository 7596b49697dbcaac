"""JSON log lines: one object per line with time, level, logger, message, the request /
job id when set, extra fields and the exception text."""

from __future__ import annotations

import json
import logging
import logging.config

import pytest

from medlabel.core.logs import (
    ContextFilter,
    JsonFormatter,
    configure_logging,
    log_context,
    uvicorn_log_config,
)


def _record(msg: str = "hello %s", args: tuple[object, ...] = ("world",)) -> logging.LogRecord:
    return logging.LogRecord("medlabel.test", logging.WARNING, __file__, 1, msg, args, None)


def test_plain_record() -> None:
    out = json.loads(JsonFormatter().format(_record()))
    assert out["message"] == "hello world"
    assert out["level"] == "WARNING" and out["logger"] == "medlabel.test"
    assert out["time"].endswith("+00:00")
    assert "request_id" not in out and "exception" not in out


def test_context_ids_and_extras() -> None:
    record = _record()
    record.status = 201  # as given with extra=
    with log_context(request_id="r1", job_id=7):
        ContextFilter().filter(record)
    out = json.loads(JsonFormatter().format(record))
    assert out["request_id"] == "r1" and out["job_id"] == 7 and out["status"] == 201
    after = _record()
    ContextFilter().filter(after)  # the context ended with the block
    assert "request_id" not in json.loads(JsonFormatter().format(after))


def test_exception_text_is_one_line_of_json() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord(
            "medlabel.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    out = json.loads(line)
    assert "ValueError: boom" in out["exception"] and "Traceback" in out["exception"]


def test_values_json_cannot_encode_become_text() -> None:
    record = _record("%s", (object(),))
    record.thing = {1, 2}
    out = json.loads(JsonFormatter().format(record))
    assert out["thing"] in ("{1, 2}", "{2, 1}")


def test_uvicorn_config_is_valid_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    config = uvicorn_log_config("json")
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        logging.config.dictConfig(config)
        logging.getLogger("uvicorn.error").info("started")
        with log_context(request_id="q"):
            logging.getLogger("medlabel.access").info("GET / 200")
    finally:
        for h in root.handlers[:]:
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert [x["message"] for x in lines] == ["started", "GET / 200"]
    assert lines[1]["request_id"] == "q"
    assert config["loggers"]["uvicorn.access"]["propagate"] is False


def test_configure_logging_leaves_foreign_handlers_alone() -> None:
    root = logging.getLogger()
    before = root.handlers[:]
    assert before, "pytest installs its capture handlers on the root logger"
    configure_logging(logging.DEBUG, "json")
    assert root.handlers == before
