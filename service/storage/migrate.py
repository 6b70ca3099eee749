"""Schema migrations through Alembic (``pm25 migrate``)."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

ROOT = Path(__file__).resolve().parents[2]


def alembic_config(url: str) -> Config:
    """An Alembic config for the project's migrations and the given database URL."""
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["url"] = url
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database schema to ``revision``."""
    command.upgrade(alembic_config(url), revision)


class SchemaNotReadyError(Exception):
    """The database has not been migrated to the schema this version of the service needs."""


def check_schema(engine: Engine, url_for_messages: str) -> None:
    """Refuse to work on a database whose schema is not at the newest revision.

    Raises
    ------
    SchemaNotReadyError
        The database was never migrated, or is behind; the message says to run
        ``pm25 migrate``.
    sqlalchemy.exc.OperationalError
        The database cannot be reached.
    """
    quiet = logging.getLogger("alembic")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # a check, not a migration: no "Context impl" chatter
    try:
        head = ScriptDirectory.from_config(alembic_config(url_for_messages)).get_current_head()
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    finally:
        quiet.setLevel(level)
    if current is None:
        raise SchemaNotReadyError(
            f"database {url_for_messages} has no schema yet: run `pm25 migrate` first"
        )
    if current != head:
        raise SchemaNotReadyError(
            f"database {url_for_messages} is at schema revision {current}, this service needs "
            f"{head}: run `pm25 migrate`"
        )
