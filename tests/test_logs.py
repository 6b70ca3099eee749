"""Logging: one format for every process, and quiet third-party loggers."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from service.logs import configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    aps = logging.getLogger("apscheduler").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("apscheduler").setLevel(aps)


def test_apschedulers_info_chatter_is_hidden_but_its_warnings_are_not(
    restore_logging: None,
) -> None:
    configure_logging("INFO")
    job_log = logging.getLogger("apscheduler.executors.default")
    assert not job_log.isEnabledFor(logging.INFO)
    assert job_log.isEnabledFor(logging.WARNING)
    assert logging.getLogger("service.jobs").isEnabledFor(logging.INFO)
    configure_logging("DEBUG")  # pm25 -v: everything speaks
    assert job_log.isEnabledFor(logging.DEBUG)
