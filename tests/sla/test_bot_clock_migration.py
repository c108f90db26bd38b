"""Revision 0006 cancels open bot clocks of leads outside the bot channels.

Rows are written at revision 0005 with plain SQL tables, as the data looked
before the per-channel rule, and read back after the upgrade.
"""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command

from b24app.db import MIGRATIONS_DIR, Database, alembic_config
from b24app.models import UTCDateTime


def _load_migration():
    path = MIGRATIONS_DIR / "versions" / "0006_cancel_off_channel_bot_clocks.py"
    spec = importlib.util.spec_from_file_location("migration_0006", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MIGRATION = _load_migration()

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
BOT_DUE = NOW + timedelta(seconds=30)

portals = sa.table(
    "portals",
    *[
        sa.column(name, sa.String)
        for name in (
            "member_id",
            "domain",
            "client_endpoint",
            "server_endpoint",
            "access_token_enc",
            "refresh_token_enc",
            "scope",
            "status",
            "language",
        )
    ],
    sa.column("id", sa.Integer),
    sa.column("token_version", sa.Integer),
    sa.column("tag_options", sa.JSON),
    sa.column("settings", sa.JSON),
    *[
        sa.column(name, UTCDateTime)
        for name in (
            "token_expires_at",
            "token_refreshed_at",
            "created_at",
            "updated_at",
        )
    ],
)
leads = sa.table(
    "leads",
    sa.column("id", sa.Integer),
    sa.column("portal_id", sa.Integer),
    sa.column("bitrix_id", sa.Integer),
    sa.column("channel", sa.String),
    sa.column("created_at", UTCDateTime),
    sa.column("tags", sa.JSON),
    sa.column("urgent", sa.Boolean),
    sa.column("needs_review", sa.Boolean),
    sa.column("classification", sa.JSON),
    sa.column("deleted", sa.Boolean),
)
clocks = sa.table(
    "sla_clocks",
    sa.column("id", sa.Integer),
    sa.column("portal_id", sa.Integer),
    sa.column("lead_id", sa.Integer),
    sa.column("tier", sa.String),
    sa.column("target_seconds", sa.Integer),
    sa.column("target_rule", sa.String),
    sa.column("state", sa.String),
    sa.column("clock_round", sa.Integer),
    *[
        sa.column(name, UTCDateTime)
        for name in (
            "created_at",
            "starts_at",
            "due_at",
            "stopped_at",
            "breached_at",
            "next_check_at",
        )
    ],
)
escalations = sa.table(
    "escalations",
    sa.column("id", sa.Integer),
    sa.column("portal_id", sa.Integer),
    sa.column("lead_id", sa.Integer),
    sa.column("level", sa.String),
    sa.column("action", sa.String),
    sa.column("status", sa.String),
    sa.column("attempts", sa.Integer),
    sa.column("task_bitrix_id", sa.Integer),
    sa.column("task_closed", sa.Boolean),
    sa.column("due_at", UTCDateTime),
    sa.column("claimed_at", UTCDateTime),
    sa.column("sent_at", UTCDateTime),
)

PORTAL_SETTINGS = {
    1: {},
    2: {"policy": {"bot_channels": ["openline", "site"]}},
    3: {"policy": {"bot_channels": "site"}},
    4: {"policy": {"human_seconds": 900}, "segment": "clinic"},
    5: {"policy": {"bot_channels": []}},
}

# lead id: (portal id, channel, (bot state, bot stop time), expected bot state)
RUNNING = ("running", None)
BREACHED_OPEN = ("breached", None)
CASES = {
    11: (1, "site", RUNNING, "cancelled"),
    12: (1, "email", BREACHED_OPEN, "cancelled"),
    13: (1, "email", ("met", NOW + timedelta(seconds=10)), "met"),
    14: (1, "site", ("breached", NOW + timedelta(seconds=50)), "breached"),
    15: (1, "site", ("cancelled", NOW + timedelta(seconds=20)), "cancelled"),
    16: (1, "openline", RUNNING, "running"),
    17: (1, "openline", BREACHED_OPEN, "breached"),
    18: (1, None, RUNNING, "cancelled"),
    19: (1, "", BREACHED_OPEN, "cancelled"),
    21: (2, "site", BREACHED_OPEN, "breached"),
    22: (2, "email", RUNNING, "cancelled"),
    31: (3, "site", RUNNING, "running"),
    41: (4, "site", BREACHED_OPEN, "cancelled"),
    42: (4, "openline", RUNNING, "running"),
    51: (5, "openline", RUNNING, "cancelled"),
}


def _migrate(database: Database, revision: str, down: bool = False) -> None:
    config = alembic_config(database.engine)
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        if down:
            command.downgrade(config, revision)
        else:
            command.upgrade(config, revision)


def _seed(database: Database) -> None:
    with database.engine.begin() as connection:
        for portal_id, settings in PORTAL_SETTINGS.items():
            connection.execute(
                sa.insert(portals).values(
                    id=portal_id,
                    member_id=f"member-{portal_id}",
                    domain=f"p{portal_id}.bitrix24.test",
                    client_endpoint="https://p.test/rest/",
                    server_endpoint="https://p.test/rest/",
                    access_token_enc="x",
                    refresh_token_enc="x",
                    scope="crm",
                    status="active",
                    language="ru",
                    token_version=0,
                    tag_options={},
                    settings=settings,
                    token_expires_at=NOW,
                    token_refreshed_at=NOW,
                    created_at=NOW,
                    updated_at=NOW,
                )
            )

        for lead_id, (portal_id, channel, (state, stopped), _) in CASES.items():
            connection.execute(
                sa.insert(leads).values(
                    id=lead_id,
                    portal_id=portal_id,
                    bitrix_id=lead_id,
                    channel=channel,
                    created_at=NOW,
                    tags=["booking"],
                    urgent=False,
                    needs_review=False,
                    classification={},
                    deleted=False,
                )
            )
            breached = BOT_DUE if state == "breached" else None
            for tier, tier_state, tier_stopped, due in (
                ("bot", state, stopped, BOT_DUE),
                ("human", "breached", None, NOW + timedelta(minutes=30)),
            ):
                connection.execute(
                    sa.insert(clocks).values(
                        portal_id=portal_id,
                        lead_id=lead_id,
                        tier=tier,
                        target_seconds=30 if tier == "bot" else 1800,
                        target_rule=tier if tier == "bot" else "default",
                        state=tier_state,
                        clock_round=0,
                        created_at=NOW,
                        starts_at=NOW,
                        due_at=due,
                        stopped_at=tier_stopped,
                        breached_at=breached if tier == "bot" else due,
                        next_check_at=due if tier_state == "running" else None,
                    )
                )
            connection.execute(
                sa.insert(escalations).values(
                    portal_id=portal_id,
                    lead_id=lead_id,
                    level="task",
                    action="task_senior",
                    status="sent",
                    attempts=1,
                    task_bitrix_id=lead_id,
                    task_closed=False,
                    due_at=NOW + timedelta(minutes=30),
                    claimed_at=NOW + timedelta(minutes=30),
                    sent_at=NOW + timedelta(minutes=30, seconds=2),
                )
            )


def _rows(database: Database, table: sa.TableClause) -> dict[tuple, dict]:
    with database.engine.connect() as connection:
        rows = connection.execute(sa.select(table)).mappings().all()
    if table is escalations:
        return {(row["lead_id"],): dict(row) for row in rows}
    return {(row["lead_id"], row["tier"]): dict(row) for row in rows}


@pytest.fixture
def seeded_database(database_url):
    database = Database(database_url)
    try:
        database.upgrade()
        _migrate(database, "0005", down=True)
        _seed(database)
        yield database
    finally:
        database.dispose()


def test_bot_clocks_outside_channels_cancelled(seeded_database):
    _migrate(seeded_database, "0006")
    after = _rows(seeded_database, clocks)

    for lead_id, (_, channel, _, expected) in CASES.items():
        assert after[(lead_id, "bot")]["state"] == expected, (lead_id, channel)


def test_cancelled_bot_clock_has_no_breach(seeded_database):
    before = _rows(seeded_database, clocks)
    _migrate(seeded_database, "0006")
    after = _rows(seeded_database, clocks)

    for lead_id in (11, 12, 18, 19, 22, 41, 51):
        clock = after[(lead_id, "bot")]
        assert clock["stopped_at"] is None, lead_id
        assert clock["breached_at"] is None, lead_id
        assert clock["next_check_at"] is None, lead_id
        assert clock["due_at"] == before[(lead_id, "bot")]["due_at"], lead_id


def test_finished_bot_clocks_unchanged(seeded_database):
    before = _rows(seeded_database, clocks)
    _migrate(seeded_database, "0006")
    after = _rows(seeded_database, clocks)

    for lead_id in (13, 14, 15, 16, 17, 21, 31, 42):
        assert after[(lead_id, "bot")] == before[(lead_id, "bot")], lead_id


def test_human_clocks_and_escalations_unchanged(seeded_database):
    clocks_before = _rows(seeded_database, clocks)
    escalations_before = _rows(seeded_database, escalations)
    _migrate(seeded_database, "0006")
    clocks_after = _rows(seeded_database, clocks)
    escalations_after = _rows(seeded_database, escalations)

    for lead_id in CASES:
        key = (lead_id, "human")
        assert clocks_after[key] == clocks_before[key], lead_id
    assert escalations_after == escalations_before


def test_migration_runs_twice(seeded_database):
    _migrate(seeded_database, "0006")
    first = _rows(seeded_database, clocks)
    _migrate(seeded_database, "0005", down=True)
    second_down = _rows(seeded_database, clocks)
    _migrate(seeded_database, "head")
    second = _rows(seeded_database, clocks)

    assert second_down == first
    assert second == first


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (None, ("openline",)),
        ({}, ("openline",)),
        ('{"policy": {"bot_channels": ["site"]}}', ("site",)),
        ({"policy": None}, ("openline",)),
        ({"policy": {"bot_seconds": 60}}, ("openline",)),
        (
            {"policy": {"bot_channels": ["site", "openline", "site"]}},
            ("openline", "site"),
        ),
        ({"policy": {"bot_channels": []}}, ()),
        ({"policy": {"bot_channels": "site"}}, None),
        ({"policy": {"bot_channels": [1]}}, None),
        ({"policy": ["openline"]}, None),
        ("not json", None),
        ([], ("openline",)),
        (["x"], None),
    ],
)
def test_bot_channels_from_settings(settings, expected):
    assert MIGRATION.bot_channels(settings) == expected
