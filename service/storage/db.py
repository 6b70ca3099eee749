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


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; for SQLite, create the folder and set WAL and the busy timeout."""
    url = normalise_url(url)
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
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
