"""The portal client: token refresh under races, the error policy, the limiter."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select

from b24app.bitrix.errors import (
    BitrixCallError,
    MethodDeferred,
    PortalInactive,
    RateLimited,
)
from b24app.bitrix.limiter import PortalRateLimiter
from b24app.models import MethodDeferral, Portal


def _fresh(services) -> Portal:
    with services.db.session() as session:
        return session.scalar(select(Portal))


def test_expired_token_is_refreshed_once(emulator, installed, services):
    emulator.portal.expire_tokens()
    version = _fresh(services).token_version

    results = []

    def call():
        portal = _fresh(services)
        results.append(services.client(portal).call("user.current")["ID"])

    threads = [threading.Thread(target=call) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 5
    assert _fresh(services).token_version == version + 1
    assert _fresh(services).status == "active"


def test_revoked_grant_marks_portal_inactive(emulator, installed, services):
    emulator.portal.expire_tokens()
    emulator.portal.set_fault("oauth.token", "invalid_grant", times=1)

    with pytest.raises(PortalInactive):
        services.client(_fresh(services)).call("user.current")

    assert _fresh(services).status == "inactive"
    with pytest.raises(PortalInactive):
        services.client(_fresh(services)).call("user.current")


def test_query_limit_raises_rate_limited(emulator, installed, services):
    emulator.portal.set_fault("crm.lead.list", "QUERY_LIMIT_EXCEEDED", times=1)

    with pytest.raises(RateLimited) as caught:
        services.client(_fresh(services)).call("crm.lead.list")

    assert caught.value.retry_after > 0
    assert _fresh(services).status == "active"


def test_operation_time_limit_defers_method(emulator, installed, services):
    emulator.portal.set_fault("crm.lead.list", "OPERATION_TIME_LIMIT", times=1)
    client = services.client(_fresh(services))

    with pytest.raises(MethodDeferred):
        client.call("crm.lead.list")
    with pytest.raises(MethodDeferred):
        client.call("crm.lead.list")

    assert client.call("user.current")["ID"]


def _defer_method(services, portal: Portal, method: str, until: datetime) -> None:
    with services.db.session() as session:
        session.add(MethodDeferral(portal_id=portal.id, method=method, until=until))


@contextmanager
def _deferral_queries(services) -> Iterator[list[str]]:
    """Collect the SQL statements that read ``method_deferrals``."""
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if "method_deferrals" in statement:
            statements.append(statement)

    event.listen(services.db.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(services.db.engine, "before_cursor_execute", record)


def _record_sends(monkeypatch, client) -> list[str]:
    sent: list[str] = []
    original = client._send

    def counting_send(method, send):
        sent.append(method)
        return original(method, send)

    monkeypatch.setattr(client, "_send", counting_send)
    return sent


def test_call_reads_deferral_once(emulator, installed, services):
    client = services.client(_fresh(services))

    with _deferral_queries(services) as statements:
        assert client.call("user.current")["ID"]

    assert len(statements) == 1


def test_batch_reads_deferrals_once(emulator, installed, services):
    client = services.client(_fresh(services))
    commands = {
        "me": ("user.current", {}),
        "users": ("user.get", {"ID": 1}),
        "leads": ("crm.lead.list", {"select": ["ID"]}),
    }

    with _deferral_queries(services) as statements:
        results, errors = client.batch(commands)

    assert len(statements) == 1
    assert set(results) == {"me", "users", "leads"}
    assert errors == {}


def test_batch_with_deferred_command_not_sent(
    emulator, installed, services, monkeypatch
):
    portal = _fresh(services)
    until = datetime.now(UTC) + timedelta(minutes=5)
    _defer_method(services, portal, "crm.lead.add", until)
    client = services.client(portal)
    sent = _record_sends(monkeypatch, client)
    commands = {
        "me": ("user.current", {}),
        "lead": ("CRM.Lead.Add", {"fields": {"TITLE": "Лид"}}),
    }

    with pytest.raises(MethodDeferred) as caught:
        client.batch(commands)

    assert caught.value.method == "CRM.Lead.Add"
    assert caught.value.until > datetime.now(UTC)
    assert sent == []


def test_batch_names_first_deferred_command(emulator, installed, services):
    portal = _fresh(services)
    soon = datetime.now(UTC) + timedelta(minutes=5)
    later = soon + timedelta(minutes=5)
    _defer_method(services, portal, "crm.lead.list", later)
    _defer_method(services, portal, "user.get", soon)
    commands = {
        "me": ("user.current", {}),
        "users": ("user.get", {"ID": 1}),
        "leads": ("crm.lead.list", {}),
    }

    with pytest.raises(MethodDeferred) as caught:
        services.client(portal).batch(commands)

    assert caught.value.method == "user.get"


def test_expired_deferral_lets_call_through(emulator, installed, services):
    portal = _fresh(services)
    past = datetime.now(UTC) - timedelta(seconds=1)
    _defer_method(services, portal, "user.current", past)
    _defer_method(services, portal, "crm.lead.list", past)
    client = services.client(portal)

    assert client.call("user.current")["ID"]
    results, errors = client.batch(
        {"me": ("user.current", {}), "leads": ("crm.lead.list", {})}
    )
    assert set(results) == {"me", "leads"}
    assert errors == {}


def test_deferral_of_other_portal_ignored(emulator, installed, services):
    portal = _fresh(services)
    other = _portal_row()
    other.id = portal.id + 1
    with services.db.session() as session:
        session.add(other)
    _defer_method(
        services, other, "user.current", datetime.now(UTC) + timedelta(minutes=5)
    )

    assert services.client(portal).call("user.current")["ID"]


def test_no_auth_found_marks_inactive(emulator, installed, services):
    emulator.portal.set_fault("user.current", "NO_AUTH_FOUND", times=1)

    with pytest.raises(PortalInactive):
        services.client(_fresh(services)).call("user.current")

    assert _fresh(services).status == "inactive"


def test_legacy_crm_error_keeps_description(emulator, installed, services):
    with pytest.raises(BitrixCallError) as caught:
        services.client(_fresh(services)).call("crm.lead.get", {"id": 999999})

    assert "not found" in caught.value.description.lower()
    assert caught.value.status == 400


def test_list_reader_pages_by_id(emulator, installed, services):
    for index in range(120):
        emulator.portal.create_lead(
            {"TITLE": f"Лид {index}"}, kind="title", message=f"Лид {index}"
        )

    rows = list(
        services.client(_fresh(services)).iter_list(
            "crm.lead.list", {"select": ["ID", "TITLE"]}
        )
    )

    ids = [int(r["ID"]) for r in rows]
    assert len(ids) >= 120
    assert ids == sorted(set(ids))


def test_list_reader_raises_on_failed_page(emulator, installed, services):
    for index in range(60):
        emulator.portal.create_lead(
            {"TITLE": f"Лид {index}"}, kind="title", message=f"Лид {index}"
        )
    client = services.client(_fresh(services))
    pages = client.iter_list("crm.lead.list", {"select": ["ID"]})
    first = [next(pages) for _ in range(50)]
    emulator.portal.set_fault("crm.lead.list", "INTERNAL_SERVER_ERROR", times=1)

    with pytest.raises(BitrixCallError):
        list(pages)
    assert len(first) == 50


def test_limiter_spaces_calls_after_burst(database_url):
    from b24app.db import Database

    db = Database(database_url)
    db.upgrade()
    now = [1000.0]
    limiter = PortalRateLimiter(db, sleep=lambda s: None, clock=lambda: now[0])
    with db.session() as session:
        session.add(_portal_row())

    waits = [limiter.reserve(1, rate=2.0, burst=10) for _ in range(12)]
    db.dispose()

    assert waits[:9] == [0.0] * 9
    assert waits[9] == pytest.approx(0.5)
    assert waits[10] == pytest.approx(1.0)
    assert waits[11] == pytest.approx(1.5)


def _portal_row() -> Portal:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    return Portal(
        id=1,
        member_id="m" * 32,
        domain="d.example.ru",
        client_endpoint="https://d.example.ru/rest/",
        server_endpoint="https://o.example.ru/rest/",
        access_token_enc="x",
        refresh_token_enc="y",
        token_expires_at=now,
        token_refreshed_at=now,
        token_version=0,
        status="active",
        settings={},
        tag_options={},
    )
