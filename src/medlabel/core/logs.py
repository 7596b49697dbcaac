"""Log set-up: plain text or one JSON object per line (``MEDLABEL_LOG_FORMAT=json``),
tagged with the id of the request or job being worked on.

Log messages never carry secrets or patient identifiers: callers log ids and counts,
never names, URLs with passwords or DICOM values (see ``docs/production.md``).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FORMATS = ("text", "json")

_REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "medlabel_request_id", default=None
)
_JOB_ID: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "medlabel_job_id", default=None
)

#: attributes every LogRecord has; anything else was passed with ``extra=``
_STANDARD = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
    | {"message", "asctime", "taskName", "color_message"}  # uvicorn's ANSI-coloured copy
)


@contextlib.contextmanager
def log_context(*, request_id: str | None = None, job_id: int | None = None) -> Iterator[None]:
    """Tag every log record made inside the block (in this thread or task) with the
    request or job id."""
    tokens: list[tuple[contextvars.ContextVar[Any], contextvars.Token[Any]]] = []
    if request_id is not None:
        tokens.append((_REQUEST_ID, _REQUEST_ID.set(request_id)))
    if job_id is not None:
        tokens.append((_JOB_ID, _JOB_ID.set(job_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def current_request_id() -> str | None:
    return _REQUEST_ID.get()


class ContextFilter(logging.Filter):
    """Adds ``request_id`` and ``job_id`` (when set) to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None and (rid := _REQUEST_ID.get()):
            record.request_id = rid
        if getattr(record, "job_id", None) is None and (jid := _JOB_ID.get()) is not None:
            record.job_id = jid
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``, then ``request_id`` / ``job_id`` and any ``extra=`` fields, and
    ``exception`` (the traceback text) when there is one.

    Examples
    --------
    >>> record = logging.LogRecord("medlabel.x", logging.INFO, "f.py", 1, "hi %s", ("you",), None)
    >>> sorted(json.loads(JsonFormatter().format(record)))
    ['level', 'logger', 'message', 'time']
    """

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in out:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def formatter(log_format: str) -> logging.Formatter:
    """The formatter for ``text`` or ``json``."""
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def env_format() -> str:
    """``MEDLABEL_LOG_FORMAT`` when valid, else ``text``."""
    value = os.environ.get("MEDLABEL_LOG_FORMAT", "text").strip().lower()
    return value if value in FORMATS else "text"


def configure_logging(level: int, log_format: str | None = None) -> None:
    """Log to stderr at ``level`` in ``log_format`` (default: ``MEDLABEL_LOG_FORMAT``).

    Like :func:`logging.basicConfig`, leaves a root logger alone that has handlers
    somebody else installed (a host application, pytest); replaces its own ones.
    """
    root = logging.getLogger()
    if any(not getattr(h, "_medlabel", False) for h in root.handlers):
        return
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format or env_format()))
    handler.addFilter(ContextFilter())
    handler._medlabel = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)


def uvicorn_log_config(log_format: str, level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for ``uvicorn.run(log_config=...)``: uvicorn's and
    medlabel's records through one stderr handler in ``log_format``. Uvicorn's own access
    log is off (it shows query strings); medlabel logs each request itself
    (``medlabel.access``)."""
    formatters: dict[str, Any] = {
        "json": {"()": "medlabel.core.logs.JsonFormatter"},
        "text": {"format": TEXT_FORMAT},
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "medlabel.core.logs.ContextFilter"}},
        "formatters": {"default": formatters["json" if log_format == "json" else "text"]},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "default",
                "filters": ["context"],
            }
        },
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "WARNING"},
            # the readiness probe reads the schema revision: no line per probe
            "alembic.runtime.migration": {"level": "WARNING"},
        },
    }
