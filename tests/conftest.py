"""Shared fixtures: the service grid, a small synthetic inbox, the real reference data."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from service.grid import Grid
from service.settings import GridSpec, Settings
from service.twin.sample import SampleDay, write_sample_day

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DAY = dt.date(2024, 1, 9)


POSTGRES_ENV = "PM25_TEST_POSTGRES_URL"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="run slow tests too")
    parser.addoption(
        "--run-pseudonetcdf",
        action="store_true",
        help="run the PseudoNetCDF check (in its own environment: make test-pnc)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip, each with its reason: slow tests without --run-slow, PostgreSQL tests without a
    server, and the PseudoNetCDF check outside its own environment."""
    skips = {
        "slow": None if config.getoption("--run-slow") else "slow: run with --run-slow",
        "postgres": None
        if os.environ.get(POSTGRES_ENV)
        else f"no PostgreSQL configured: set {POSTGRES_ENV} (CI does)",
        "pseudonetcdf": None
        if config.getoption("--run-pseudonetcdf")
        else "the independent PseudoNetCDF check runs in its own environment: make test-pnc",
    }
    for item in items:
        for marker, reason in skips.items():
            if reason and marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


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


def train_tiny(root: Path, n_days: int, epochs: int, validation_split: float = 0.2) -> Path:
    """Train a real Case 3 artifact (2 filters) on ``n_days`` sample days; return its path."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from models.train import TrainConfig
    from service.training.dataset import build_dataset
    from service.training.workflow import train_on_dataset

    days = [dt.date(2024, 1, 9) + dt.timedelta(days=k) for k in range(n_days)]
    for k, day in enumerate(days):
        write_sample_day(root / "archive", day, GridSpec(), seed=k)
    data = build_dataset(root / "archive", days[0], days[-1], root / "cache", workers=1,
                         progress=False)  # fmt: skip
    config = TrainConfig(case=3, epochs=epochs, filters=2, batch_size=2, verbose=0,
                         validation_split=validation_split)  # fmt: skip
    train_on_dataset(data, 3, root / "model", config=config, grid=GridSpec(), synthetic=True,
                     archive=root / "archive")  # fmt: skip
    return root / "model" / "model.keras"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real Case 3 artifact, trained for one epoch on two sample days with 2 filters."""
    return train_tiny(tmp_path_factory.mktemp("tiny_model"), 2, 1, validation_split=0.5)


def published_database(root: Path, model: Path, token: str) -> Settings:
    """A migrated SQLite database holding one published forecast for ``DAY``."""
    from service.jobs import run_daily_forecast
    from service.storage.db import make_engine, session_factory
    from service.storage.migrate import upgrade

    write_sample_day(root / "inbox", DAY, GridSpec())
    url = f"sqlite:///{root}/pm25.sqlite"
    upgrade(url)
    settings = Settings(inbox=root / "inbox", database_url=url, model_path=model,
                        input_settle_seconds=0, admin_token=token)  # fmt: skip
    engine = make_engine(url)
    out = run_daily_forecast(DAY, settings=settings, sessions=session_factory(engine))
    engine.dispose()
    assert out.status.value == "succeeded", out.message
    return settings


def _reset_postgres(url: str) -> None:
    from sqlalchemy import create_engine, text

    from service.storage.db import normalise_url

    engine = create_engine(normalise_url(url))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database (no schema): SQLite in a temporary folder, or the real PostgreSQL.

    The PostgreSQL case carries the ``postgres`` marker, so it is skipped without a server.
    """
    if request.param == "postgres":
        url = os.environ[POSTGRES_ENV]
        _reset_postgres(url)
        return url
    return f"sqlite:///{tmp_path}/pm25.sqlite"


@pytest.fixture
def db_url(empty_db_url: str) -> str:
    """A migrated, empty database: SQLite in a temporary folder, or the real PostgreSQL."""
    from service.storage.migrate import upgrade

    upgrade(empty_db_url)
    return empty_db_url


@pytest.fixture
def env(tmp_path: Path, db_url: str, tiny_model: Path):  # type: ignore[no-untyped-def]
    """A sample day's inbox, settings with the tiny model, and sessions on ``db_url``:
    ``(settings, sessions, inbox)``."""
    from service.storage.db import make_engine, session_factory

    inbox = tmp_path / "inbox"
    write_sample_day(inbox, DAY, GridSpec())
    settings = Settings(
        inbox=inbox, database_url=db_url, model_path=tiny_model, input_settle_seconds=0
    )
    engine = make_engine(db_url)
    yield settings, session_factory(engine), inbox
    engine.dispose()
