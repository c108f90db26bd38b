"""Helpers shared by the integration tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from b24app.models import InboundEvent, Lead


def drain(
    worker, services, *, until: Callable[[], Any] | None = None, timeout: float = 15.0
) -> None:
    """Process events as the worker does until none is pending and ``until`` holds.

    Events reach the app asynchronously from the emulator's delivery thread,
    so the loop keeps polling for a short while.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ran = worker.process_pending(limit=50)
        if not ran:
            if until is None or until():
                if not _pending(services):
                    return
            time.sleep(0.05)
    raise AssertionError("events were not processed in time")


def _pending(services) -> bool:
    with services.db.session() as session:
        return (
            session.scalar(
                select(InboundEvent.id)
                .where(InboundEvent.status.in_(("pending", "processing")))
                .limit(1)
            )
            is not None
        )


def lead_row(services, bitrix_id: int) -> Lead | None:
    with services.db.session() as session:
        return session.scalar(select(Lead).where(Lead.bitrix_id == bitrix_id))


def events_stored(services, name: str | None = None) -> list[InboundEvent]:
    with services.db.session() as session:
        query = select(InboundEvent).order_by(InboundEvent.id)
        if name:
            query = query.where(InboundEvent.event == name)
        return list(session.scalars(query))


def open_kpi_tab_as(page, services, app_server, portal, language: str) -> None:
    """Open the KPI tab in ``page`` as an administrator speaking ``language``."""
    from html import escape

    from b24app.placement_auth import Viewer, sign_api_token

    viewer = Viewer(
        portal_id=portal.id,
        member_id=portal.member_id,
        user_id=1,
        is_admin=True,
        language=language,
    )
    token = sign_api_token(services, viewer)
    page.goto(f"{app_server.url}/healthz")
    page.set_content(
        f'<form id="f" method="post" action="{app_server.url}/kpi">'
        f'<input type="hidden" name="token" value="{escape(token)}"></form>'
    )
    page.evaluate("document.getElementById('f').submit()")
    page.locator("#kpi[data-loaded='true']").wait_for(timeout=15000)
