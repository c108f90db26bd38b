"""CSV and XLSX downloads of the reports, and the secret CSV feed for spreadsheets.

The feed URL carries a random token; only its SHA-256 is stored, so a leaked
database does not leak working feed URLs. Rotating replaces the hash,
revoking clears it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import secrets
from datetime import UTC, date, datetime, timedelta
from typing import Any

from openpyxl import Workbook
from sqlalchemy import select

from b24app import portal_settings
from b24app.kpi import currency
from b24app.kpi import settings as kpi_settings
from b24app.kpi.first_response import first_response_report
from b24app.kpi.models import KpiSettings
from b24app.kpi.report import deal_series
from b24app.models import Portal
from b24app.services import Services

FEED_DAYS = 90
# Amount fields and columns (the last part of a dotted key), in the base
# currency. The XLSX download shows them with the currency's sign.
MONEY_KEYS = frozenset(
    {
        "revenue",
        "revenue_12m",
        "average_check",
        "revenue_per_employee",
        "cac",
        "ltv_12m",
        "spend",
    }
)
DAILY_COLUMNS = [
    "date",
    "leads",
    "bookings",
    "visited",
    "no_show",
    "cancelled",
    "revenue",
]


def daily_rows(
    services: Services, portal: Portal, start: date, end: date
) -> list[dict[str, Any]]:
    """Return one row per local day: leads, bookings, visits, no-shows, revenue."""
    tz = portal_settings.timezone(portal)
    cfg = kpi_settings.load(services, portal)
    leads = {
        row["date"]: row["leads"]
        for row in first_response_report(services, portal, start, end, cfg=cfg)[
            "leads_per_day"
        ]
    }
    with services.db.session() as session:
        series = deal_series(session, portal.id, cfg, tz, start, end)
    return [{"date": d["date"], "leads": leads.get(d["date"], 0), **d} for d in series]


def flatten(report: dict[str, Any]) -> list[tuple[str, Any]]:
    """Scalar fields of a report as (name, value) pairs; lists become sheets."""
    pairs: list[tuple[str, Any]] = []
    for key, value in report.items():
        if isinstance(value, dict):
            pairs.extend((f"{key}.{k}", v) for k, v in flatten(value))
        elif not isinstance(value, list):
            pairs.append((key, value))
    return pairs


def tables(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for key, value in report.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            found[key] = value
        elif isinstance(value, dict):
            found.update({f"{key}.{k}": v for k, v in tables(value).items()})
    return found


# Column and field titles of the XLSX download, per dotted-key part: the key
# "appointments.no_show_rate" reads "Визиты · Доля неявок". Parts not listed
# keep their machine name. The CSV download and the feed keep the machine
# keys, which spreadsheet formulas refer to (see docs/kpi.md).
TITLES: dict[str, dict[str, str]] = {
    "ru": {
        "field": "Показатель",
        "value": "Значение",
        "key": "Ключ",
        "kind": "Вид отчёта",
        "period": "Период",
        "from": "с",
        "to": "по",
        "timezone": "часовой пояс",
        "date": "Дата",
        "month": "Месяц",
        "leads_total": "Лиды без спама",
        "leads": "Лиды",
        "spam": "Спам",
        "urgent": "Срочные",
        "leads_per_day": "Лиды по дням",
        "first_response_minutes": "Первый ответ менеджера, мин",
        "bot_response_minutes": "Ответ бота, мин",
        "median": "медиана",
        "p90": "90-й процентиль",
        "count": "число",
        "answered_share": "Доля отвеченных",
        "answered_target": "Цель по отвеченным",
        "within_sla_share": "Доля в срок SLA",
        "open_clocks": "Часы идут",
        "breached_clocks": "Просрочено",
        "sla_breaches": "Нарушения SLA",
        "escalation_tasks": "Задачи руководителю",
        "tags": "Намерения",
        "booking": "запись",
        "price": "цена",
        "reschedule": "перенос",
        "cancel": "отмена",
        "complaint": "жалоба",
        "question": "вопрос",
        "review": "проверить",
        "booked": "Записались",
        "bookings": "Записи",
        "by_channel": "По каналам",
        "by_manager": "По менеджерам",
        "leads_by_channel": "Лиды по каналам",
        "conversion_by_manager": "Конверсия по менеджерам",
        "sla_by_manager": "SLA по менеджерам",
        "conversion": "Конверсия в запись",
        "rate": "доля",
        "target": "цель",
        "segment": "тип бизнеса",
        "appointments": "Визиты",
        "appointments_due": "Визитов назначено",
        "due": "назначено",
        "visited": "Пришли",
        "no_show": "Не пришли",
        "no_show_rate": "Доля неявок",
        "no_show_target": "цель по неявкам",
        "cancelled": "Отменили",
        "late_cancelled": "Отменили поздно",
        "cancel_rate": "доля отмен",
        "pending": "ещё не прошли",
        "revenue": "Выручка",
        "revenue_12m": "Выручка за 12 мес.",
        "average_check": "Средний чек",
        "revenue_per_employee": "Выручка на сотрудника",
        "employees": "сотрудники",
        "amount_coverage": "Визиты с суммой",
        "contact_coverage": "Визиты с клиентом",
        "deals": "сделки",
        "retention": "Возврат за 3 мес.",
        "retention_3m": "Возврат за 3 мес.",
        "retention_window_complete": "Окно возврата закрыто",
        "clients": "клиенты",
        "clients_12m": "клиенты за 12 мес.",
        "returned": "вернулись",
        "window_days": "окно, дней",
        "window_complete": "окно закрыто",
        "acquisition": "Привлечение",
        "new_clients": "Новые клиенты",
        "new_by_channel": "новые по каналам",
        "spend": "Расходы на рекламу",
        "spend_entered": "расходы внесены",
        "months": "месяцы",
        "cac": "CAC",
        "ltv_12m": "LTV за 12 мес.",
        "ltv_to_cac": "LTV ÷ CAC",
        "coverage": "Полнота данных",
        "appointment_time": "время визита",
        "amount": "сумма",
        "contact": "клиент",
        "lead_link": "связь с лидом",
        "lead_channel": "канал лида",
        "amount_of_visits": "сумма у визитов",
        "contact_of_visits": "клиент у визитов",
        "deals_per_day": "Сделки по дням",
        "status": "Светофор",
        "targets": "Цели",
        "units": "Единицы",
        "times": "время",
        "shares": "доли",
        "money": "деньги",
        "median_minutes": "медиана ответа, мин",
        "breached": "просрочено",
        "first_response_median": "Медиана первого ответа, мин",
        "capacity": "Мест в день",
        "free_slots": "Свободные места",
        "free_slots_source": "источник свободных мест",
        "currency": "Валюта",
        "code": "код",
        "source": "источник",
        "rates_read_at": "курсы прочитаны",
        "visits_other_currency": "визиты в другой валюте",
        "visits_converted": "пересчитаны по курсу",
        "visits_left_out": "без курса, не учтены",
    },
    "en": {
        "field": "Field",
        "value": "Value",
        "key": "Key",
        "date": "Date",
        "month": "Month",
        "leads_total": "Leads without spam",
        "leads": "Leads",
        "first_response_minutes": "Manager's first response, min",
        "bot_response_minutes": "Bot response, min",
        "answered_share": "Answered share",
        "within_sla_share": "Within SLA share",
        "conversion": "Lead-to-booking",
        "appointments": "Appointments",
        "visited": "Visited",
        "no_show": "No-shows",
        "no_show_rate": "No-show rate",
        "cancelled": "Cancelled",
        "late_cancelled": "Cancelled late",
        "revenue": "Revenue",
        "average_check": "Average check",
        "revenue_per_employee": "Revenue per employee",
        "retention": "Return within 3 months",
        "acquisition": "Acquisition",
        "new_clients": "New clients",
        "spend": "Ad spend",
        "ltv_12m": "LTV (12 months)",
        "coverage": "Data coverage",
        "deals_per_day": "Deals per day",
        "bookings": "Bookings",
        "currency": "Currency",
        "code": "code",
        "source": "source",
        "rates_read_at": "rates read at",
        "visits_other_currency": "visits in another currency",
        "visits_converted": "converted at a rate",
        "visits_left_out": "without a rate, not counted",
    },
}


def title(key: str, lang: str = "ru") -> str:
    """Return the readable title of a dotted report key in ``lang``."""
    words = TITLES["en" if lang == "en" else "ru"]
    return " · ".join(words.get(part, part) for part in key.split("."))


def csv_value(value: Any) -> Any:
    """Write booleans as ``true``/``false`` and ``None`` as an empty cell."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value


def to_csv(report: dict[str, Any]) -> str:
    """Write the report's scalar fields as ``name,value`` lines, then each table.

    Names and column headers are the machine keys of the JSON report.
    """
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["field", "value"])
    writer.writerows([(name, csv_value(value)) for name, value in flatten(report)])
    for name, rows in tables(report).items():
        writer.writerow([])
        writer.writerow([name])
        columns = list(rows[0])
        writer.writerow(columns)
        writer.writerows([[csv_value(row.get(c)) for c in columns] for row in rows])
    return out.getvalue()


def to_xlsx(report: dict[str, Any], lang: str = "ru") -> bytes:
    """Build a workbook: a summary sheet of scalar fields, one sheet per table.

    Headers, field names and sheet names are readable titles in ``lang``
    (Russian unless ``en``). The summary sheet keeps the machine key in
    its third column. Amounts (``MONEY_KEYS``) get a number format with the
    report currency's sign, so the cells stay numbers.
    """
    money_format = currency.xlsx_format(report_currency(report), lang)
    book = Workbook()
    sheet = book.active
    sheet.title = "Summary" if lang == "en" else "Сводка"
    sheet.append([title("field", lang), title("value", lang), title("key", lang)])
    for name, value in flatten(report):
        sheet.append([title(name, lang), _cell(value), name])
        if _is_money(name, value):
            sheet.cell(row=sheet.max_row, column=2).number_format = money_format
    used = {sheet.title}
    for name, rows in tables(report).items():
        table = book.create_sheet(_sheet_name(title(name, lang), used))
        columns = list(rows[0])
        table.append([title(c, lang) for c in columns])
        for row in rows:
            table.append([_cell(row.get(c)) for c in columns])
            for index, column in enumerate(columns, start=1):
                if _is_money(column, row.get(column)):
                    cell = table.cell(row=table.max_row, column=index)
                    cell.number_format = money_format
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def report_currency(report: dict[str, Any]) -> str | None:
    """Return the currency code of a report's amounts (a KPI or periodic report)."""
    value = report.get("currency")
    if isinstance(value, dict):
        return value.get("code")
    return value if isinstance(value, str) else None


def _is_money(key: str, value: Any) -> bool:
    last = key.rsplit(".", 1)[-1]
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    return is_number and last in MONEY_KEYS and not key.startswith("coverage.")


def _sheet_name(name: str, used: set[str]) -> str:
    """Fit a sheet name to Excel: at most 31 characters, unique, no [ ] : * ? / \\."""
    clean = "".join(" " if ch in "[]:*?/\\" else ch for ch in name)[:31]
    candidate, number = clean, 2
    while candidate in used:
        suffix = f" ({number})"
        candidate, number = clean[: 31 - len(suffix)] + suffix, number + 1
    used.add(candidate)
    return candidate


def _cell(value: Any) -> Any:
    return (
        value if isinstance(value, int | float | str) or value is None else str(value)
    )


def rows_csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    writer.writerows([[csv_value(row.get(c)) for c in columns] for row in rows])
    return out.getvalue()


# The feed


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def rotate_feed(services: Services, portal: Portal) -> str:
    """Issue a new feed token (the old URL stops working); return the token."""
    token = secrets.token_urlsafe(24)
    kpi_settings.save(
        services,
        portal,
        feed_token_hash=_digest(token),
        feed_created_at=datetime.now(UTC),
    )
    return token


def revoke_feed(services: Services, portal: Portal) -> None:
    kpi_settings.save(services, portal, feed_token_hash=None, feed_created_at=None)


def portal_for_feed(services: Services, token: str) -> Portal | None:
    if not token or len(token) > 128:
        return None
    with services.db.session() as session:
        row = session.scalar(
            select(KpiSettings).where(KpiSettings.feed_token_hash == _digest(token))
        )
        if row is None:
            return None
        portal = session.get(Portal, row.portal_id)
    return portal if portal is not None and portal.is_active else None


def feed_csv(services: Services, portal: Portal, today: date) -> str:
    start = today - timedelta(days=FEED_DAYS - 1)
    return rows_csv(daily_rows(services, portal, start, today), DAILY_COLUMNS)
