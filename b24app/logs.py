"""Logging set-up: one line per record with the structured fields appended."""

from __future__ import annotations

import logging
import sys

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class FieldsFormatter(logging.Formatter):
    """Append ``extra`` fields as key=value, so logs can be searched by portal."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in sorted(fields.items()))
        return line


def configure_logging(level: str = "INFO") -> None:
    """Install one stderr handler on the root logger (once per process)."""
    root = logging.getLogger()
    if any(getattr(h, "_otklik", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        FieldsFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler._otklik = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # b24pysdk and urllib3 log every request at DEBUG with URLs; keep them quiet.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    # The scheduler logs every run of every job (several a second), and Alembic
    # logs its plugin set-up on each start. The worker logs what the jobs did.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
