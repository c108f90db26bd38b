"""Eleven weeks of a beauty studio's past work, for the demo portal.

``seed_history`` writes leads, first calls and e-mails, booking deals and
the stage history of both straight into the portal's stores, without
events: the app learns about them through its own history import, as it
would on a portal that has worked for months before installing it.

The story behind the numbers: leads come from the site, ads, the open-line
chat, calls, e-mail and recommendations, a little more each week and most
on Fridays. About one lead in six books. Clients mostly come; some do not
show up, some cancel, a few of those late. Many come back within weeks, so
retention and LTV have something to count. Some deals have no amount, so
the data coverage line has something to report. Appointments of the coming
week are booked or confirmed. Every deal carries its visit time in
``UF_CRM_APPOINTMENT_AT`` and its visit day in ``BEGINDATE``.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from . import crm
from .fields import DEAL_FIELDS, format_datetime
from .scenario import FEMALE_NAMES, LAST_NAMES, MALE_NAMES

if TYPE_CHECKING:
    from .state import Portal

logger = logging.getLogger(__name__)

BOOKING_CATEGORY = 1
APPOINTMENT_FIELD = "UF_CRM_APPOINTMENT_AT"
MANAGERS = (3, 4, 5, 6)

# Lead source: (weight, share of leads that book).
LEAD_SOURCES = {
    "WEB": (30, 0.17),
    "ADVERTISING": (22, 0.13),
    "1|OPENLINE": (18, 0.19),
    "CALL": (14, 0.23),
    "EMAIL": (6, 0.11),
    "RECOMMENDATION": (10, 0.27),
}
# How much better or worse than the average each manager books.
MANAGER_SKILL = {3: 1.0, 4: 1.2, 5: 0.95, 6: 0.75}
# Leads per weekday relative to the week's mean (Monday first).
WEEKDAY_FACTORS = (1.05, 0.95, 1.0, 1.05, 1.25, 0.95, 0.75)
# Service, price in roubles, and weight.
PRICE_LIST = (
    ("Стрижка и укладка", 2500, 22),
    ("Окрашивание", 6500, 12),
    ("Маникюр с покрытием", 1800, 24),
    ("Педикюр", 2400, 10),
    ("Чистка лица", 4200, 9),
    ("Ламинирование ресниц", 3000, 8),
    ("Коррекция бровей", 1200, 10),
    ("Массаж спины", 2800, 5),
)
NO_SHOW_SHARE = 0.11
CANCEL_SHARE = 0.12
LATE_CANCEL_SHARE = 0.35
NO_AMOUNT_SHARE = 0.06
# A client who came books again with this chance, after 7..45 days.
RETURN_SHARE = 0.5
RETURN_DAYS = (7, 45)
REPEAT_SOURCE = "PARTNER"


@dataclass
class _Client:
    contact_id: int
    name: str
    last_name: str
    manager: int


@dataclass(order=True)
class _Booking:
    created: datetime
    client: _Client = field(compare=False)
    source: str = field(compare=False)
    lead_id: int | None = field(compare=False, default=None)


@dataclass
class HistorySummary:
    leads: int = 0
    deals: int = 0
    visits: int = 0
    no_shows: int = 0
    cancelled: int = 0
    upcoming: int = 0
    contacts: int = 0
    returning_clients: int = 0
    clients: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            key: value for key, value in self.__dict__.items() if isinstance(value, int)
        }


def seed_history(
    portal: Portal,
    *,
    weeks: int = 11,
    leads_per_day: float = 14.0,
    growth: float = 0.35,
    seed: int = 7,
    now: datetime | None = None,
) -> HistorySummary:
    """Fill the portal with ``weeks`` weeks of past leads and booking deals.

    Lead volume grows by ``growth`` (0.35 = 35 %) from the first week to the
    last. Returns the counts and the clients (contact id, name, manager),
    so the demo can book some of them again.
    """
    rng = random.Random(seed)
    now = (now or portal.now()).astimezone(portal.tz)
    start = (now - timedelta(days=7 * weeks)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    summary = HistorySummary()
    bookings: list[_Booking] = []
    clients: list[_Client] = []

    with portal.lock:
        days = (now.date() - start.date()).days
        for day_index in range(days):
            day = start + timedelta(days=day_index)
            trend = 1.0 + growth * day_index / max(days - 1, 1)
            mean = leads_per_day * trend * WEEKDAY_FACTORS[day.weekday()]
            count = max(0, round(rng.gauss(mean, math.sqrt(mean))))
            moments = sorted(
                day + timedelta(minutes=rng.randint(8 * 60, 21 * 60))
                for _ in range(count)
            )
            for created in moments:
                booking = _lead(portal, rng, created, clients, summary)
                if booking is not None:
                    bookings.append(booking)

        _deals(portal, rng, bookings, now, summary)
        portal.touch()

    summary.contacts = len(clients)
    summary.clients = [
        {
            "contact_id": client.contact_id,
            "name": client.name,
            "last_name": client.last_name,
            "manager": client.manager,
        }
        for client in clients
    ]
    logger.info(
        "demo history seeded on %s: %s",
        portal.domain or "the portal",
        summary.as_dict(),
    )
    return summary


# ---------------------------------------------------------------- leads


def _lead(
    portal: Portal,
    rng: random.Random,
    created: datetime,
    clients: list[_Client],
    summary: HistorySummary,
) -> _Booking | None:
    """Write one lead with its first touch; return a booking when it booked."""
    source = rng.choices(
        list(LEAD_SOURCES), weights=[w for w, _ in LEAD_SOURCES.values()]
    )[0]
    manager = rng.choice(MANAGERS)
    female = rng.random() < 0.75
    name = rng.choice(FEMALE_NAMES if female else MALE_NAMES)
    last_name = rng.choice(LAST_NAMES)[0 if female else 1]
    spam = rng.random() < 0.06
    booked = (
        not spam and rng.random() < LEAD_SOURCES[source][1] * MANAGER_SKILL[manager]
    )
    if spam:
        status = "JUNK"
    elif booked:
        status = "CONVERTED"
    else:
        status = rng.choice(("IN_PROCESS", "PROCESSED", "PROCESSED"))

    lead_id = portal.next_id("lead")
    record = crm._blank_lead(portal, lead_id, manager)
    stamp = _stamp(portal, created)
    touched = created + timedelta(minutes=_reply_minutes(rng))
    record.update(
        {
            "TITLE": f"Заявка: {name} {last_name}" if not spam else "Предложение",
            "NAME": name,
            "LAST_NAME": last_name,
            "SOURCE_ID": source,
            "STATUS_ID": status,
            "STATUS_SEMANTIC_ID": crm.semantic_of(portal, "STATUS", status),
            "ASSIGNED_BY_ID": str(manager),
            "CREATED_BY_ID": str(manager),
            "DATE_CREATE": stamp,
            "DATE_MODIFY": _stamp(portal, touched),
            "MOVED_TIME": _stamp(portal, touched),
            "DATE_CLOSED": _stamp(portal, touched) if status != "IN_PROCESS" else "",
        }
    )
    portal.leads.data[lead_id] = record
    summary.leads += 1
    _stage(portal, 1, lead_id, "STATUS_ID", "NEW", created)
    _stage(portal, 1, lead_id, "STATUS_ID", status, touched, created=False)
    if not spam and rng.random() < 0.93:
        _touch(portal, lead_id, source, manager, touched)
    if not booked:
        return None

    # One booking client in six is someone who has been here before.
    if clients and rng.random() < 0.16:
        client = rng.choice(clients)
    else:
        client = _Client(portal.next_id("contact"), name, last_name, manager)
        clients.append(client)
    record["CONTACT_ID"] = str(client.contact_id)
    record["CONTACT_IDS"] = [str(client.contact_id)]
    booked_at = touched + timedelta(minutes=rng.randint(1, 20))
    return _Booking(booked_at, client, source, lead_id)


def _reply_minutes(rng: random.Random) -> int:
    """Minutes to the first call: mostly quick, sometimes hours later."""
    return max(1, min(int(rng.lognormvariate(2.6, 1.0)), 600))


def _touch(
    portal: Portal, lead_id: int, source: str, manager: int, at: datetime
) -> None:
    """Write the manager's first call (an e-mail for e-mail leads) to the client."""
    email = source == "EMAIL"
    activity_id = portal.next_id("activity")
    stamp = _stamp(portal, at)
    portal.activities.data[activity_id] = {
        "ID": str(activity_id),
        "OWNER_ID": str(lead_id),
        "OWNER_TYPE_ID": "1",
        "TYPE_ID": "4" if email else "2",
        "PROVIDER_ID": "CRM_EMAIL" if email else "VOXIMPLANT_CALL",
        "PROVIDER_TYPE_ID": "EMAIL" if email else "CALL",
        "SUBJECT": "Ответ на заявку" if email else "Исходящий звонок",
        "CREATED": stamp,
        "LAST_UPDATED": stamp,
        "START_TIME": stamp,
        "END_TIME": stamp,
        "DEADLINE": stamp,
        "COMPLETED": "Y",
        "STATUS": "2",
        "RESPONSIBLE_ID": str(manager),
        "AUTHOR_ID": str(manager),
        "DIRECTION": "2",
        "DESCRIPTION": "",
        "BINDINGS": [{"OWNER_TYPE_ID": "1", "OWNER_ID": str(lead_id)}],
        "COMMUNICATIONS": [],
        "FILES": [],
        "SETTINGS": [],
    }


# ---------------------------------------------------------------- deals


def _deals(
    portal: Portal,
    rng: random.Random,
    bookings: list[_Booking],
    now: datetime,
    summary: HistorySummary,
) -> None:
    """Write a deal per booking, in time order; visits may bring a return."""
    queue = sorted(bookings)
    returned: set[int] = set()
    index = 0
    while index < len(queue):
        booking = queue[index]
        index += 1
        if booking.created >= now:
            continue
        outcome, visit = _deal(portal, rng, booking, now, summary)
        if outcome != "C1:WON" or rng.random() >= RETURN_SHARE:
            continue
        again = visit + timedelta(days=rng.randint(*RETURN_DAYS))
        if again >= now:
            continue
        returned.add(booking.client.contact_id)
        repeat = _Booking(again, booking.client, REPEAT_SOURCE)
        # Keep the queue in time order without sorting it again.
        position = index
        while position < len(queue) and queue[position].created <= again:
            position += 1
        queue.insert(position, repeat)
    summary.returning_clients = len(returned)


def _deal(
    portal: Portal,
    rng: random.Random,
    booking: _Booking,
    now: datetime,
    summary: HistorySummary,
) -> tuple[str, datetime]:
    """Write one booking deal and its stage moves; return (stage, visit time)."""
    service, price, _weight = rng.choices(
        PRICE_LIST, weights=[item[2] for item in PRICE_LIST]
    )[0]
    created = booking.created
    visit_day = created + timedelta(days=rng.choice((0, 1, 1, 2, 2, 3, 4, 5, 7)))
    visit = visit_day.replace(
        hour=rng.randint(10, 19), minute=rng.choice((0, 30)), second=0, microsecond=0
    )
    if visit <= created:
        visit = created + timedelta(hours=3)
        visit = visit.replace(minute=0 if visit.minute < 30 else 30, second=0)

    moves: list[tuple[str, datetime]] = [("C1:NEW", created)]
    if visit < now:
        roll = rng.random()
        if roll < CANCEL_SHARE:
            late = rng.random() < LATE_CANCEL_SHARE
            hours = rng.uniform(1, 12) if late else rng.uniform(48, 96)
            cancel_at = max(
                created + timedelta(minutes=5), visit - timedelta(hours=hours)
            )
            moves.append(("C1:APOLOGY", cancel_at))
            summary.cancelled += 1
        else:
            if rng.random() < 0.5 and visit - timedelta(days=1) > created:
                moves.append(("C1:PREPARATION", visit - timedelta(days=1)))
            if roll < CANCEL_SHARE + NO_SHOW_SHARE:
                moves.append(("C1:LOSE", visit + timedelta(minutes=40)))
                summary.no_shows += 1
            else:
                moves.append(
                    ("C1:WON", visit + timedelta(minutes=rng.randint(60, 150)))
                )
                summary.visits += 1
    else:
        if visit - now < timedelta(days=2) and rng.random() < 0.5:
            moves.append(("C1:PREPARATION", min(now, visit - timedelta(hours=20))))
        summary.upcoming += 1
    moves = [(stage, min(at, now)) for stage, at in moves]
    stage, moved_at = moves[-1]

    amount = round(price * rng.uniform(0.85, 1.3) / 100) * 100
    if rng.random() < NO_AMOUNT_SHARE:
        amount = 0
    deal_id = portal.next_id("deal")
    client = booking.client
    manager = client.manager if rng.random() < 0.7 else rng.choice(MANAGERS)
    semantic = crm.semantic_of(portal, "DEAL_STAGE_1", stage)
    record: dict[str, Any] = dict.fromkeys(DEAL_FIELDS)
    record |= {
        "ID": str(deal_id),
        "TITLE": f"{service} — {client.name} {client.last_name}",
        "TYPE_ID": "SERVICE",
        "CATEGORY_ID": str(BOOKING_CATEGORY),
        "STAGE_ID": stage,
        "STAGE_SEMANTIC_ID": semantic,
        "CURRENCY_ID": "RUB",
        "OPPORTUNITY": f"{amount:.2f}",
        "IS_MANUAL_OPPORTUNITY": "Y",
        "TAX_VALUE": "0.00",
        "ASSIGNED_BY_ID": str(manager),
        "CREATED_BY_ID": str(manager),
        "MODIFY_BY_ID": str(manager),
        "MOVED_BY_ID": str(manager),
        "CONTACT_ID": str(client.contact_id),
        "CONTACT_IDS": [str(client.contact_id)],
        "LEAD_ID": str(booking.lead_id) if booking.lead_id else None,
        "SOURCE_ID": booking.source,
        "BEGINDATE": visit.date().isoformat(),
        "CLOSEDATE": visit.date().isoformat(),
        APPOINTMENT_FIELD: _stamp(portal, visit),
        "DATE_CREATE": _stamp(portal, created),
        "DATE_MODIFY": _stamp(portal, moved_at),
        "MOVED_TIME": _stamp(portal, moved_at),
        "LAST_ACTIVITY_TIME": _stamp(portal, moved_at),
        "LAST_ACTIVITY_BY": str(manager),
        "OPENED": "Y",
        "CLOSED": "Y" if semantic in ("S", "F") else "N",
        "IS_NEW": "N",
        "IS_RECURRING": "N",
        "IS_RETURN_CUSTOMER": "Y" if booking.source == REPEAT_SOURCE else "N",
    }
    portal.deals.data[deal_id] = record
    summary.deals += 1
    for position, (moved_stage, at) in enumerate(moves):
        _stage(
            portal,
            2,
            deal_id,
            "STAGE_ID",
            moved_stage,
            at,
            created=position == 0,
        )
    return stage, visit


# ---------------------------------------------------------------- helpers


def _stamp(portal: Portal, at: datetime) -> str:
    return format_datetime(at.astimezone(portal.tz))


def _stage(
    portal: Portal,
    entity_type: int,
    owner_id: int,
    key: str,
    stage: str,
    at: datetime,
    *,
    created: bool = True,
) -> None:
    """Write one row of ``crm.stagehistory.list`` in the portal's format."""
    if entity_type == 1:
        semantic = crm.semantic_of(portal, "STATUS", stage)
    else:
        semantic = crm.semantic_of(portal, "DEAL_STAGE_1", stage)
    # TYPE_ID: 1 created, 2 moved to an open stage, 3 moved to a final one.
    if created:
        type_id = 1
    elif semantic in ("S", "F"):
        type_id = 3
    else:
        type_id = 2
    history_id = portal.next_id("stagehistory")
    row: dict[str, Any] = {
        "ID": history_id,
        "TYPE_ID": type_id,
        "OWNER_ID": owner_id,
        "CREATED_TIME": _stamp(portal, at),
        "ENTITY_TYPE_ID": entity_type,
        key: stage,
    }
    if entity_type == 1:
        row["STATUS_SEMANTIC_ID"] = semantic
    else:
        row["STAGE_SEMANTIC_ID"] = semantic
        row["CATEGORY_ID"] = BOOKING_CATEGORY
    portal.stage_history.data[history_id] = row
