"""Event intake: verify a Bitrix24 event, store it durably, answer fast.

Bitrix24 does not retry a failed delivery, so the handler stores the event in
the database before answering, and the worker processes it later. Nothing is
stored for an unknown portal, a wrong application token or a malformed body.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from b24app.crypto import same_secret
from b24app.models import InboundEvent, Portal
from b24app.phpform import FormError, parse_nested
from b24app.services import Services

logger = logging.getLogger(__name__)

# Events the worker processes; the install and uninstall events are handled
# at once by the web handler.
QUEUED_EVENTS = frozenset(
    {
        "ONCRMLEADADD",
        "ONCRMLEADUPDATE",
        "ONCRMLEADDELETE",
        "ONCRMACTIVITYADD",
        "ONCRMACTIVITYUPDATE",
        "ONCRMACTIVITYDELETE",
        "ONAPPUPDATE",
    }
)
LIFECYCLE_EVENTS = frozenset({"ONAPPINSTALL", "ONAPPUNINSTALL"})


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
        """The same delivery twice gives the same key.

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
        """What is kept of the event: never the tokens."""
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
    if event not in QUEUED_EVENTS | LIFECYCLE_EVENTS:
        raise EventRejected(f"event {event} is not handled by this app", 400)
    return ParsedEvent(
        event=event,
        data=data,
        auth={k: str(v) for k, v in auth.items() if isinstance(v, str)},
        ts=str(body.get("ts") or ""),
        handler_id=str(body.get("event_handler_id") or ""),
    )


def find_portal(services: Services, member_id: str) -> Portal:
    with services.db.session() as session:
        portal = session.scalar(select(Portal).where(Portal.member_id == member_id))
    if portal is None:
        raise EventRejected("unknown portal", 404)
    return portal


def verify(services: Services, portal: Portal, event: ParsedEvent) -> None:
    """Check ``auth[application_token]`` against the stored one, in constant time."""
    stored = services.application_token(portal)
    if stored is None:
        _learn_application_token(services, portal, event)
        return
    if not same_secret(event.auth.get("application_token"), stored):
        raise EventRejected("application token does not match", 401)


def _learn_application_token(
    services: Services, portal: Portal, event: ParsedEvent
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


def store_event(services: Services, portal: Portal, event: ParsedEvent) -> bool:
    """Store the event once; return False when it was a repeated delivery."""
    now = datetime.now(UTC)
    statement = insert(InboundEvent).values(
        portal_id=portal.id,
        event=event.event,
        dedupe_key=event.dedupe_key(),
        payload=event.stored_payload(),
        status="pending",
        attempts=0,
        received_at=now,
        next_attempt_at=now,
    )
    try:
        with services.db.session() as session:
            session.execute(statement)
    except IntegrityError:
        return False
    return True
