"""Shared fixtures: the service grid, a small synthetic inbox, the real reference data."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from service.grid import Grid
from service.settings import GridSpec, Settings
from service.twin.sample import SampleDay, write_sample_day

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DAY = dt.date(2024, 1, 9)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="run slow tests too")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def grid() -> Grid:
    return Grid(GridSpec())


@pytest.fixture
def sample_day(tmp_path: Path) -> SampleDay:
    return write_sample_day(tmp_path / "inbox", DAY, GridSpec())


@pytest.fixture
def settings(tmp_path: Path, sample_day: SampleDay) -> Settings:
    return Settings(inbox=tmp_path / "inbox", database_url=f"sqlite:///{tmp_path}/t.sqlite")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA}")
    return SHARED_DATA
