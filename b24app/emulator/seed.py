"""Starting content of the emulated portal: a small beauty studio.

Every portal gets the owner (the administrator who installs the app), the
top department and the default CRM directories. The full seed adds a sales
department headed by a senior manager, four managers, a bookings pipeline
(booked, confirmed, visited, no-show, cancelled) and a few deals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import crm
from .events import AUTOMATION

if TYPE_CHECKING:
    from .state import Portal

EMAIL_DOMAIN = "lotos-studio.example"

# (id, first name, last name, gender, position, department ids, admin)
_OWNER = (1, "Ольга", "Соколова", "F", "Владелец студии", [1], True)
_STAFF = (
    (2, "Ирина", "Белова", "F", "Руководитель отдела продаж", [2], False),
    (3, "Анна", "Морозова", "F", "Администратор", [2], False),
    (4, "Дмитрий", "Ковалёв", "M", "Менеджер по продажам", [2], False),
    (5, "Екатерина", "Лебедева", "F", "Менеджер по продажам", [2], False),
    (6, "Максим", "Орлов", "M", "Администратор", [2], False),
)
_LOGINS = {
    1: "olga.sokolova",
    2: "irina.belova",
    3: "anna.morozova",
    4: "dmitry.kovalev",
    5: "ekaterina.lebedeva",
    6: "maxim.orlov",
}

LEAD_STATUSES = (
    ("NEW", "Не обработан", 10, None, "process", "#39A8EF"),
    ("IN_PROCESS", "В работе", 20, None, "process", "#2FC6F6"),
    ("PROCESSED", "Обработан", 30, None, "process", "#55D0E0"),
    ("JUNK", "Некачественный лид", 40, "F", "failure", "#FF5752"),
    ("CONVERTED", "Качественный лид", 50, "S", "success", "#7BD500"),
)

LEAD_SOURCES = (
    ("CALL", "Звонок"),
    ("EMAIL", "Электронная почта"),
    ("WEB", "Веб-сайт"),
    ("ADVERTISING", "Реклама"),
    ("PARTNER", "Существующий клиент"),
    ("RECOMMENDATION", "По рекомендации"),
    ("TRADE_SHOW", "Выставка"),
    ("WEBFORM", "CRM-форма"),
    ("CALLBACK", "Обратный звонок"),
    ("RC_GENERATOR", "Генератор продаж"),
    ("STORE", "Интернет-магазин"),
    ("OTHER", "Другое"),
    ("1|OPENLINE", "Открытая линия - Онлайн-чат"),
    ("1|TELEGRAMBOT", "Открытая линия - Telegram"),
)

DEAL_STAGES = (
    ("NEW", "Новая", 10, None, "process"),
    ("PREPARATION", "Подготовка документов", 20, None, "process"),
    ("EXECUTING", "В работе", 30, None, "process"),
    ("WON", "Сделка успешна", 60, "S", "success"),
    ("LOSE", "Сделка провалена", 70, "F", "failure"),
)

# The bookings pipeline (category 1).
BOOKING_STAGES = (
    ("C1:NEW", "Записан", 10, None, "process"),
    ("C1:PREPARATION", "Подтвердил запись", 20, None, "process"),
    ("C1:WON", "Пришёл", 30, "S", "success"),
    ("C1:LOSE", "Не пришёл", 40, "F", "failure"),
    ("C1:APOLOGY", "Отменил запись", 50, "F", "apology"),
)

DEAL_TYPES = (("SALE", "Продажа"), ("SERVICE", "Услуга"), ("COMPLEX", "Комплексная"))
HONORIFICS = (("HNR_RU_1", "г-н"), ("HNR_RU_2", "г-жа"))

_SEMANTIC_COLORS = {
    "process": "#39A8EF",
    "success": "#7BD500",
    "failure": "#FF5752",
    "apology": "#FF5752",
}

_BOOKING_DEALS = (
    ("Стрижка и укладка — Мария Иванова", "2500.00", "C1:NEW", 3),
    ("Чистка лица — Светлана Петрова", "4200.00", "C1:PREPARATION", 4),
    ("Курс массажа спины, 5 сеансов", "12000.00", "C1:WON", 5),
    ("Маникюр с покрытием — Юлия Смирнова", "1800.00", "C1:LOSE", 6),
    ("Окрашивание — Наталья Козлова", "6500.00", "C1:APOLOGY", 3),
)


def _user(portal: Portal, row: tuple, now: str) -> dict[str, Any]:
    user_id, name, last_name, gender, position, departments, admin = row
    login = _LOGINS[user_id]
    return {
        "ID": str(user_id),
        "XML_ID": f"emp{user_id:04d}",
        "ACTIVE": True,
        "NAME": name,
        "LAST_NAME": last_name,
        "SECOND_NAME": "",
        "EMAIL": f"{login}@{EMAIL_DOMAIN}",
        "LAST_LOGIN": now,
        "DATE_REGISTER": now,
        "IS_ONLINE": "N",
        "TIME_ZONE": portal.config.timezone,
        "TIME_ZONE_OFFSET": str(int(portal.now().utcoffset().total_seconds())),
        "TIMESTAMP_X": now,
        "PERSONAL_GENDER": gender,
        "PERSONAL_BIRTHDAY": "",
        "WORK_POSITION": position,
        "UF_DEPARTMENT": list(departments),
        "USER_TYPE": "employee",
        "IS_ADMIN": admin,
    }


def _status(
    portal: Portal,
    entity_id: str,
    status_id: str,
    name: str,
    sort: int,
    *,
    semantics: str | None = None,
    semantic_name: str | None = None,
    color: str | None = None,
    category_id: int | None = None,
) -> None:
    status_key = portal.next_id("status")
    record: dict[str, Any] = {
        "ID": str(status_key),
        "ENTITY_ID": entity_id,
        "STATUS_ID": status_id,
        "NAME": name,
        "NAME_INIT": name,
        "SORT": str(sort),
        "SYSTEM": "Y",
        "CATEGORY_ID": None if category_id is None else str(category_id),
        "COLOR": color,
        "SEMANTICS": semantics,
    }
    if semantic_name is not None:
        record["EXTRA"] = {
            "SEMANTICS": semantic_name,
            "COLOR": color or _SEMANTIC_COLORS[semantic_name],
        }
    portal.statuses.data[status_key] = record


def _directories(portal: Portal, *, with_bookings: bool) -> None:
    for status_id, name, sort, semantics, semantic_name, color in LEAD_STATUSES:
        _status(
            portal,
            "STATUS",
            status_id,
            name,
            sort,
            semantics=semantics,
            semantic_name=semantic_name,
            color=color,
        )
    for sort, (status_id, name) in enumerate(LEAD_SOURCES, start=1):
        _status(portal, "SOURCE", status_id, name, sort * 10)
    for sort, (status_id, name) in enumerate(DEAL_TYPES, start=1):
        _status(portal, "DEAL_TYPE", status_id, name, sort * 10)
    for sort, (status_id, name) in enumerate(HONORIFICS, start=1):
        _status(portal, "HONORIFIC", status_id, name, sort * 10)
    for status_id, name, sort, semantics, semantic_name in DEAL_STAGES:
        _status(
            portal,
            "DEAL_STAGE",
            status_id,
            name,
            sort,
            semantics=semantics,
            semantic_name=semantic_name,
            color=_SEMANTIC_COLORS[semantic_name],
            category_id=0,
        )
    portal.categories.data[0] = {
        "id": 0,
        "name": "Общая",
        "sort": 10,
        "entityTypeId": 2,
        "isDefault": "Y",
    }
    if not with_bookings:
        return

    for status_id, name, sort, semantics, semantic_name in BOOKING_STAGES:
        _status(
            portal,
            "DEAL_STAGE_1",
            status_id,
            name,
            sort,
            semantics=semantics,
            semantic_name=semantic_name,
            color=_SEMANTIC_COLORS[semantic_name],
            category_id=1,
        )
    portal.categories.data[1] = {
        "id": 1,
        "name": "Записи клиентов",
        "sort": 20,
        "entityTypeId": 2,
        "isDefault": "N",
    }


def populate(portal: Portal, *, full: bool) -> None:
    """Fill an empty portal; `full` adds staff, the bookings pipeline and deals."""
    now = portal.now_iso()
    with portal.lock:
        portal.departments.data[1] = {
            "ID": "1",
            "NAME": "Студия «Лотос»",
            "SORT": "500",
            "PARENT": None,
            "UF_HEAD": "1",
        }
        portal.users.data[1] = _user(portal, _OWNER, now)
        _directories(portal, with_bookings=full)
        portal._counters["user"] = 1
        portal._counters["department"] = 1
        if not full:
            return

        portal.departments.data[2] = {
            "ID": "2",
            "NAME": "Отдел продаж",
            "SORT": "500",
            "PARENT": "1",
            "UF_HEAD": "2",
        }
        portal._counters["department"] = 2
        for row in _STAFF:
            portal.users.data[row[0]] = _user(portal, row, now)
        portal._counters["user"] = len(_STAFF) + 1

    for title, amount, stage, assigned in _BOOKING_DEALS:
        deal_id = crm.add_deal(
            portal,
            {
                "TITLE": title,
                "CATEGORY_ID": 1,
                "OPPORTUNITY": amount,
                "CURRENCY_ID": "RUB",
                "ASSIGNED_BY_ID": assigned,
                "TYPE_ID": "SERVICE",
            },
            AUTOMATION,
        )
        if stage != "C1:NEW":
            crm.update_deal(portal, deal_id, {"STAGE_ID": stage}, AUTOMATION)
    _booking_resources(portal)
    crm.add_deal(
        portal,
        {
            "TITLE": "Корпоративный абонемент на 10 визитов",
            "OPPORTUNITY": "35000.00",
            "ASSIGNED_BY_ID": 2,
            "TYPE_ID": "SALE",
        },
        AUTOMATION,
    )


def _booking_resources(portal: Portal) -> None:
    """Two masters in the Booking module, working 10:00-20:00 every day."""
    from .methods import booking

    for name in ("Мастер Анна", "Мастер Ирина"):
        resource_id = booking.add_resource(portal, {"name": name, "typeId": 1})
        portal.booking_resources.data[resource_id]["slotRanges"][0].update(
            {"from": 10 * 60, "to": 20 * 60}
        )
