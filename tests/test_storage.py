"""Storage: migrations match the tables, fields round-trip, SQLite runs in WAL mode."""

from __future__ import annotations

import numpy as np
import pytest
from alembic import command
from sqlalchemy import text

from service.storage.db import DatabaseMissingError, create_sqlite_folder, make_engine, redact
from service.storage.migrate import alembic_config
from service.storage.repository import decode_field, encode_field
from service.storage.tables import RunField


def test_alembic_check_finds_nothing_to_migrate(db_url: str) -> None:
    command.check(alembic_config(db_url))  # raises if the tables and migrations disagree


def test_fields_round_trip_exactly_and_compress() -> None:
    field = np.random.default_rng(0).gamma(2.0, 8.0, (24, 68, 59)).astype(np.float32)
    blob = encode_field(field)
    row = RunField(run_id=1, hours=24, nrows=68, ncols=59, data=blob)
    np.testing.assert_array_equal(decode_field(row), field)
    assert len(blob) < field.nbytes


def test_sqlite_uses_wal_and_a_busy_timeout(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path}/sub/dir/x.sqlite"
    with pytest.raises(DatabaseMissingError, match="pm25 migrate"):
        make_engine(url)  # only `pm25 migrate` creates a database's folder
    assert not (tmp_path / "sub").exists()
    create_sqlite_folder(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    engine.dispose()


def test_passwords_never_appear_in_logged_urls() -> None:
    shown = redact("postgresql://pm25:s3cret@db:5432/pm25")
    assert "s3cret" not in shown and "pm25@db" not in shown and "***" in shown
