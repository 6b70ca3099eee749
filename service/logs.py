"""Logging for every process: one format, times in KST as ISO 8601 with an explicit offset.

APScheduler and the API speak KST; so do the logs, so that a log line and a run's times can be
compared at a glance (``2024-01-08T18:00:00.123+09:00 INFO service.jobs: ...``).
"""

from __future__ import annotations

import datetime as dt
import logging

from service.timeaxis import KST

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class KSTFormatter(logging.Formatter):
    """A formatter whose ``asctime`` is ISO 8601 in KST with its offset, to the millisecond."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        when = dt.datetime.fromtimestamp(record.created, KST)
        return when.isoformat(timespec="milliseconds")


def configure_logging(level: str | int = "INFO") -> None:
    """Send every logger's records to stderr in the service's format, at ``level``.

    Replaces handlers the root logger already has, so calling it twice is harmless.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(KSTFormatter(FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # one line per plugin
    # APScheduler logs every job it runs at INFO, every few seconds (the queue poll), with
    # times of its own: noise; its warnings and errors (missed runs, job errors) still show.
    # At DEBUG (``pm25 -v``) it speaks again.
    quiet = logging.getLevelName(level) if isinstance(level, int) else str(level).upper()
    logging.getLogger("apscheduler").setLevel(
        logging.NOTSET if quiet == "DEBUG" else logging.WARNING
    )
