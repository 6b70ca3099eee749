"""Alembic environment: the schema of service.storage.tables, the URL from the settings."""

from __future__ import annotations

from alembic import context

from service.settings import get_settings
from service.storage.db import make_engine
from service.storage.tables import Base

target_metadata = Base.metadata


def run_migrations_offline() -> None:
    url = context.config.attributes.get("url") or get_settings().database_url.get_secret_value()
    context.configure(
        url=url, target_metadata=target_metadata, literal_binds=True, render_as_batch=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = context.config.attributes.get("url") or get_settings().database_url.get_secret_value()
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=True,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
