"""Alembic environment: online migrations through SQLAlchemy's async engine."""

import asyncio

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

from service.store.users import metadata

target_metadata = metadata


def _run(connection):  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


async def _online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "service.store.migrate sets sqlalchemy.url"
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `authsvc migrate`")
asyncio.run(_online())
