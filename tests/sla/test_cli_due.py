"""``b24app sla due``: tag checks and a database that was never migrated."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from b24app.cli import main

CREATED = "2026-03-14T20:59:00+03:00"


def _run(database_url: str | None, instance: Path, *args: str):
    env = {
        "OTKLIK_DATABASE_URL": database_url,
        "DATABASE_URL": None,
        "OTKLIK_INSTANCE_PATH": str(instance),
        "OTKLIK_SECRET_KEY": None,
        "OTKLIK_ENV": "development",
    }
    return CliRunner().invoke(main, list(args), env=env)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request, tmp_path, postgres_template) -> Iterator[str]:
    """A database that exists but has no tables, on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "empty.db"
        path.touch()
        yield f"sqlite:///{path}"
        return
    if postgres_template is None:
        pytest.skip("PostgreSQL is not reachable (set TEST_DATABASE_URL)")
    name = f"otklik_empty_{uuid.uuid4().hex[:12]}"
    with postgres_template.engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield postgres_template.url_for(name)
    postgres_template.drop(name)


def test_due_rejects_unknown_tag(tmp_path):
    result = _run(
        None,
        tmp_path / "instance",
        "sla",
        "due",
        "--portal",
        "m",
        "--created",
        CREATED,
        "--tag",
        "foo",
    )

    assert result.exit_code == 2
    assert "unknown tag 'foo'" in result.output
    assert "booking" in result.output
    assert "urgent" in result.output


def test_due_missing_sqlite_file_one_line(tmp_path):
    instance = tmp_path / "instance"

    result = _run(None, instance, "sla", "due", "--portal", "m", "--created", CREATED)

    assert result.exit_code == 1
    assert result.output.strip().startswith("Error: database not initialised at ")
    assert result.output.strip().endswith("run `b24app db upgrade`")
    assert len(result.output.strip().splitlines()) == 1
    assert not instance.exists()


def test_due_empty_database_one_line(tmp_path, empty_database_url):
    result = _run(
        empty_database_url,
        tmp_path / "instance",
        "sla",
        "due",
        "--portal",
        "m",
        "--created",
        CREATED,
    )

    assert result.exit_code == 1
    assert "database not initialised" in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_due_after_upgrade_reaches_portal_lookup(tmp_path, empty_database_url):
    upgraded = _run(empty_database_url, tmp_path / "instance", "db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output

    result = _run(
        empty_database_url,
        tmp_path / "instance",
        "sla",
        "due",
        "--portal",
        "absent",
        "--created",
        CREATED,
    )

    assert result.exit_code == 1
    assert "no portal with member_id 'absent'" in result.output
