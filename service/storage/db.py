"""Engines and sessions: SQLite (embedded default, WAL) and PostgreSQL (production, psycopg 3).

SQLite write transactions begin with ``BEGIN IMMEDIATE``, so two writers queue on the busy
timeout instead of deadlocking when both try to upgrade a read lock.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import SecretStr
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def redact(url: str | SecretStr) -> str:
    """The URL with its password hidden, for logs and messages.

    Accepts the settings' :class:`~pydantic.SecretStr` as it is, so callers need not
    unwrap the secret only to hide it again.
    """
    if isinstance(url, SecretStr):
        url = url.get_secret_value()
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


#: A password at least this long is blanked wherever it appears in a message; a shorter one
#: (``5999``) would also blank port numbers, counts and times, so it is blanked only where it
#: stands as a credential: in a URL's userinfo or after ``password``.
MIN_BARE_SECRET_CHARS = 6


def redact_text(text: str, url: str | SecretStr) -> str:
    """``text`` (an error message) with the password of ``url`` blanked.

    A password of :data:`MIN_BARE_SECRET_CHARS` or more characters is blanked wherever it
    appears; a shorter one only in credential contexts (``user:secret@host``,
    ``password=secret``, ``password 'secret'``), so that ``port 5999`` survives a password
    ``5999``.

    Examples
    --------
    >>> redact_text("port 5999: postgresql://u:5999@h/db", "postgresql://u:5999@h:5999/db")
    'port 5999: postgresql://u:***@h/db'
    """
    if isinstance(url, SecretStr):
        url = url.get_secret_value()
    try:
        password = make_url(url).password
    except ArgumentError:
        return text
    if not password:
        return text
    secret = str(password)
    if len(secret) >= MIN_BARE_SECRET_CHARS:
        return text.replace(secret, "***")
    quoted = "|".join(re.escape(s) for s in {secret, quote(secret, safe="")})
    text = re.sub(rf"(?<=:)(?:{quoted})(?=@)", "***", text)
    return re.sub(
        rf"(password\s*[=:]?\s*['\"]?)(?:{quoted})(?![\w])", r"\1***", text, flags=re.IGNORECASE
    )


def driver_reason(exc: BaseException) -> str:
    """The first line of the driver's own message (``exc.orig`` where SQLAlchemy wraps one,
    else ``exc``), without the SQL that follows it, clipped to 200 characters."""
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0][:200]


#: Valid URLs, shown when ``PM25_DATABASE_URL`` is not one.
EXAMPLE_URLS = "sqlite:///var/pm25.sqlite or postgresql://user:password@host:5432/pm25"


class DatabaseUrlError(ValueError):
    """``PM25_DATABASE_URL`` does not parse or names no known database; the message (no
    password) says what a valid URL looks like."""


class DatabaseMissingError(ValueError):
    """A SQLite database whose folder does not exist: only ``pm25 migrate`` creates it."""


def check_url(url: str | SecretStr) -> None:
    """Raise :class:`DatabaseUrlError` unless ``url`` parses and names an installed dialect."""
    if isinstance(url, SecretStr):
        url = url.get_secret_value()
    try:
        make_url(url).get_dialect()
    except ArgumentError as exc:  # NoSuchModuleError too (an unknown driver)
        reason = redact_text(driver_reason(exc), url)
        raise DatabaseUrlError(
            f"not a valid database URL ({reason}); use e.g. {EXAMPLE_URLS}"
        ) from None


def _sqlite_folder(url: str) -> Path | None:
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    if u.database.startswith("file:"):  # a URI filename: let SQLite interpret it
        return None
    return Path(u.database).parent


def create_sqlite_folder(url: str) -> None:
    """Create the folder of a SQLite database (``pm25 migrate``, which creates databases)."""
    check_url(url)
    folder = _sqlite_folder(url)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; for SQLite, set WAL and the busy timeout.

    Raises
    ------
    DatabaseUrlError
        ``url`` is not a database URL.
    DatabaseMissingError
        The folder of a SQLite database does not exist; it is not created here (only
        ``pm25 migrate`` creates databases: :func:`create_sqlite_folder`).
    """
    check_url(url)
    url = normalise_url(url)
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        folder = _sqlite_folder(url)
        if folder is not None and not folder.is_dir():
            raise DatabaseMissingError(  # short: serve's preflight clips reasons at 200 chars
                "the database does not exist (nor its folder): run `pm25 migrate` to create it"
            )
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _: Any) -> None:
            dbapi_conn.isolation_level = None  # let SQLAlchemy's BEGIN below take over
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work commits on success and rolls back on any error."""
    with factory() as session, session.begin():
        yield session
