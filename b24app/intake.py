"""Event intake: verify a Bitrix24 event, store it durably, respond fast.

Bitrix24 does not retry a failed delivery, so the handler stores the event in
the database before it responds, and the worker processes it later. Nothing is
stored for an unknown portal, a wrong application token or a malformed body.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from b24app.crypto import same_secret
from b24app.models import InboundEvent, Portal
from b24app.phpform import FormError, parse_nested
from b24app.services import Services, load_manifest

logger = logging.getLogger(__name__)

# Handled at once by the web handler rather than queued for the worker.
LIFECYCLE_EVENTS = frozenset({"ONAPPINSTALL", "ONAPPUNINSTALL"})


def queued_events() -> frozenset[str]:
    """Events the worker processes: those the manifest binds, less lifecycle ones."""
    return frozenset(load_manifest()["events"]) - LIFECYCLE_EVENTS


class EventRejected(Exception):
    """The request is not a valid event for a known portal."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class ParsedEvent:
    event: str
    data: dict[str, Any]
    auth: dict[str, str]
    ts: str
    handler_id: str

    @property
    def member_id(self) -> str:
        return self.auth.get("member_id", "")

    @property
    def has_user_token(self) -> bool:
        """False for robots, workflows and other actions tied to no user."""
        return bool(self.auth.get("access_token"))

    def dedupe_key(self) -> str:
        """Return a key that is the same for a repeated delivery.

        Events carry no id of their own, so the key covers the whole body,
        auth included: two changes of one lead within the same second by
        different actors (the app, a robot, a manager) stay distinct.
        """
        body = json.dumps(
            [self.event, self.data, self.ts, self.handler_id, self.auth],
            sort_keys=True,
            ensure_ascii=False,
        )
        return hashlib.sha256(body.encode()).hexdigest()

    def stored_payload(self) -> dict[str, Any]:
        """Return what is kept of the event, which never includes the tokens."""
        return {
            "data": self.data,
            "ts": self.ts,
            "user_id": self.auth.get("user_id"),
            "has_user_token": self.has_user_token,
        }


def parse_event(items: list[tuple[str, str]]) -> ParsedEvent:
    try:
        body = parse_nested(items)
    except FormError as err:
        raise EventRejected(f"malformed event body: {err}", 400) from err

    event = str(body.get("event") or "").upper()
    auth = body.get("auth")
    data = body.get("data") or {}
    if not event:
        raise EventRejected("missing field: event", 400)
    if not isinstance(auth, dict) or not auth.get("member_id"):
        raise EventRejected("missing field: auth[member_id]", 400)
    if not isinstance(data, dict):
        raise EventRejected("field data must be a group of values", 400)
    if event not in queued_events() | LIFECYCLE_EVENTS:
        raise EventRejected(f"event {event} is not handled by this app", 400)
    return ParsedEvent(
        event=event,
        data=data,
        auth={k: str(v) for k, v in auth.items() if isinstance(v, str)},
        ts=str(body.get("ts") or ""),
        handler_id=str(body.get("event_handler_id") or ""),
    )


@dataclass(frozen=True)
class PortalRef:
    """The few portal columns intake needs, read without the ORM."""

    id: int
    member_id: str
    domain: str
    status: str
    application_token_enc: str | None

    @property
    def is_active(self) -> bool:
        return self.status == "active"


def accept(services: Services, event: ParsedEvent) -> tuple[PortalRef, str]:
    """Verify the event and store it in one transaction.

    Returns the portal and what happened: "queued", "duplicate", "ignored"
    (the portal is not active) or "uninstalled". Raises EventRejected for an
    unknown portal or a wrong application token; nothing is stored then.
    """
    with services.db.engine.begin() as connection:
        portal = _portal_ref(connection, event.member_id)
        if portal.application_token_enc:
            stored_token = services.box.decrypt(portal.application_token_enc)
            if not same_secret(event.auth.get("application_token"), stored_token):
                raise EventRejected("application token does not match", 401)
            return portal, _apply(connection, portal, event)

    # No application token is stored yet: prove the event first, outside
    # the transaction, because proving it calls the portal.
    _learn_application_token(services, portal, event)
    with services.db.engine.begin() as connection:
        portal = _portal_ref(connection, event.member_id)
        return portal, _apply(connection, portal, event)


def _portal_ref(connection, member_id: str) -> PortalRef:
    row = connection.execute(
        select(
            Portal.id,
            Portal.member_id,
            Portal.domain,
            Portal.status,
            Portal.application_token_enc,
        ).where(Portal.member_id == member_id)
    ).first()
    if row is None:
        raise EventRejected("unknown portal", 404)
    return PortalRef(*row)


def _apply(connection, portal: PortalRef, event: ParsedEvent) -> str:
    now = datetime.now(UTC)
    if event.event == "ONAPPUNINSTALL":
        connection.execute(
            update(Portal)
            .where(Portal.id == portal.id)
            .values(
                status="uninstalled",
                uninstalled_at=now,
                inactive_reason="ONAPPUNINSTALL",
            )
        )
        logger.info("portal uninstalled", extra={"member_id": portal.member_id})
        return "uninstalled"
    if not portal.is_active:
        return "ignored"

    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(InboundEvent)
        .values(
            portal_id=portal.id,
            event=event.event,
            dedupe_key=event.dedupe_key(),
            payload=event.stored_payload(),
            status="pending",
            attempts=0,
            received_at=now,
            next_attempt_at=now,
        )
        .on_conflict_do_nothing(index_elements=["portal_id", "dedupe_key"])
        .returning(InboundEvent.id)
    )
    inserted = connection.execute(statement).scalar_one_or_none()
    return "queued" if inserted is not None else "duplicate"


def _learn_application_token(
    services: Services, portal: PortalRef, event: ParsedEvent
) -> None:
    # Some install paths carry no APPLICATION_TOKEN. The first event that
    # brings a user token proves itself by a call to the stored portal with
    # that token; only then is its application token kept.
    from b24pysdk.api.callers import call_method
    from b24pysdk.errors import BitrixSDKException

    token = event.auth.get("access_token")
    app_token = event.auth.get("application_token")
    if not token or not app_token:
        raise EventRejected("application token is not known yet for this portal", 401)
    try:
        call_method(
            domain=portal.domain,
            auth_token=token,
            is_webhook=False,
            api_method="app.info",
            params={},
            timeout=services.timeout,
            max_retries=1,
        )
    except BitrixSDKException as err:
        raise EventRejected("event token was not accepted by the portal", 401) from err

    with services.db.session() as session:
        row = session.get(Portal, portal.id)
        if row.application_token_enc is None:
            row.application_token_enc = services.box.encrypt(app_token)
    logger.info(
        "application token learned from a verified event",
        extra={"member_id": portal.member_id},
    )
