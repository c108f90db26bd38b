"""The reminders migration goes down and up again on both backends."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect

from b24app.db import Database, alembic_config


def _migrate(database: Database, revision: str, down: bool = False) -> None:
    config = alembic_config(database.engine)
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        if down:
            command.downgrade(config, revision)
        else:
            command.upgrade(config, revision)


def test_migration_down_and_up(database_url):
    database = Database(database_url)
    try:
        database.upgrade()
        _migrate(database, "0003", down=True)
        dropped = "reminder_jobs" not in inspect(database.engine).get_table_names()
        _migrate(database, "head")
        restored = "reminder_jobs" in inspect(database.engine).get_table_names()
    finally:
        database.dispose()
    assert dropped
    assert restored
