"""The weekly KPI e-mail to the owner: HTML with inline PNG charts, plain text too.

Sent over SMTP with the ``OTKLIK_SMTP_*`` settings (see ``settings.smtp_settings``)
once per portal and ISO week: the claim row in ``kpi_claims`` decides, so
several workers never send it twice.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from b24app import portal_settings
from b24app.kpi import currency, png
from b24app.kpi import settings as kpi_settings
from b24app.kpi.claims import claim, mark, release
from b24app.kpi.report import weekly_report
from b24app.models import Portal
from b24app.services import Services

logger = logging.getLogger(__name__)

SEND_WEEKDAY = 0  # Monday, for the week that ended on Sunday
SEND_HOUR = 9

LABELS = {
    "ru": {
        "subject": "Отклик: итоги недели {start} — {end}",
        "leads": "Новые лиды",
        "answered": "Отвечено",
        "median": "Медиана первого ответа, мин",
        "conversion": "Конверсия в запись",
        "visited": "Пришли",
        "no_show": "Не пришли (доля)",
        "cancelled": "Отмены (поздние)",
        "sla": "В срок SLA",
        "revenue": "Выручка",
        "bookings": "Записи по дням",
        "channels": "Лиды по каналам",
    },
    "en": {
        "subject": "Otklik: week {start} to {end}",
        "leads": "New leads",
        "answered": "Answered",
        "median": "Median first response, min",
        "conversion": "Lead-to-booking conversion",
        "visited": "Visited",
        "no_show": "No-shows (rate)",
        "cancelled": "Cancelled (late)",
        "sla": "Within SLA",
        "revenue": "Revenue",
        "bookings": "Bookings per day",
        "channels": "Leads by channel",
    },
}


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{round(value * 100, 1)} %"


def build_message(
    report: dict[str, Any], *, sender: str, recipient: str, lang: str
) -> EmailMessage:
    """Build the e-mail of one weekly report: text, HTML and two PNG charts."""
    text = LABELS.get(lang, LABELS["ru"])
    rows = [
        (text["leads"], str(report["leads"])),
        (text["answered"], _pct(report["answered_share"])),
        (text["median"], str(report["first_response_median"] or "—")),
        (text["conversion"], _pct(report["conversion"])),
        (text["visited"], str(report["visited"])),
        (text["no_show"], f"{report['no_show']} ({_pct(report['no_show_rate'])})"),
        (text["cancelled"], f"{report['cancelled']} ({report['late_cancelled']})"),
        (text["sla"], _pct(report["within_sla_share"])),
        (
            text["revenue"],
            currency.money_text(report.get("revenue"), report.get("currency"), lang),
        ),
    ]
    message = EmailMessage()
    message["Subject"] = text["subject"].format(start=report["from"], end=report["to"])
    message["From"] = sender
    message["To"] = recipient
    message.set_content("\n".join(f"{label}: {value}" for label, value in rows) + "\n")

    bookings_png = png.bar_chart([d["bookings"] for d in report["deals_per_day"]])
    channels_png = png.bar_chart(
        [r["leads"] for r in report["leads_by_channel"]], color=png.ACCENT
    )
    cid_bookings, cid_channels = make_msgid("bookings"), make_msgid("channels")
    table = "".join(
        f"<tr><td>{escape(label)}</td><td><b>{escape(value)}</b></td></tr>"
        for label, value in rows
    )
    channel_list = ", ".join(
        f"{escape(r['key'])}: {r['leads']}" for r in report["leads_by_channel"]
    )
    html = (
        "<html><body style='font-family:Arial,sans-serif'>"
        f"<h2>{escape(message['Subject'])}</h2><table>{table}</table>"
        f"<h3>{escape(text['bookings'])}</h3>"
        f"<img src='cid:{cid_bookings[1:-1]}' width='480' height='160' alt=''>"
        f"<h3>{escape(text['channels'])}</h3><p>{channel_list}</p>"
        f"<img src='cid:{cid_channels[1:-1]}' width='480' height='160' alt=''>"
        "</body></html>"
    )
    message.add_alternative(html, subtype="html")
    html_part = message.get_payload()[1]
    for data, cid in ((bookings_png, cid_bookings), (channels_png, cid_channels)):
        html_part.add_related(data, "image", "png", cid=cid)
    return message


class MailError(Exception):
    """Raised when an e-mail is not delivered; the message names cause and fix."""


def tls_context(smtp: kpi_settings.SmtpSettings) -> ssl.SSLContext:
    """Build a client context that verifies the certificate chain and the host name."""
    context = ssl.create_default_context(cafile=smtp.ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def send(message: EmailMessage, smtp: kpi_settings.SmtpSettings) -> None:
    """Deliver ``message`` or raise MailError when it is not accepted.

    With ``starttls`` the upgrade is required: a server that does not offer
    STARTTLS gets no message. Credentials are never sent without TLS.
    """
    address = f"{smtp.host}:{smtp.port}"
    if smtp.username and smtp.tls == "none":
        raise MailError(
            f"OTKLIK_SMTP_USER is set but OTKLIK_SMTP_TLS is none, so the "
            f"credentials would reach {address} in clear text; set "
            "OTKLIK_SMTP_TLS to starttls or ssl"
        )
    context = tls_context(smtp) if smtp.tls != "none" else None
    try:
        if smtp.tls == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                smtp.host, smtp.port, timeout=smtp.timeout, context=context
            )
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
        with client:
            if smtp.tls == "starttls":
                client.ehlo()
                if not client.has_extn("starttls"):
                    raise MailError(
                        f"the SMTP server {address} does not offer STARTTLS; "
                        "use OTKLIK_SMTP_TLS=ssl if it expects TLS from the first "
                        "byte"
                    )
                client.starttls(context=context)
            if smtp.username:
                client.login(smtp.username, smtp.password or "")
            client.send_message(message)
    except ssl.SSLCertVerificationError as err:
        raise MailError(
            f"the certificate of the SMTP server {address} is not trusted "
            f"({err.verify_message}); set OTKLIK_SMTP_CA_FILE to the CA bundle "
            "that signed it"
        ) from err
    except smtplib.SMTPAuthenticationError as err:
        raise MailError(
            f"the SMTP server {address} rejected the login of "
            f"OTKLIK_SMTP_USER ({err.smtp_code})"
        ) from err
    except (OSError, smtplib.SMTPException) as err:
        # smtplib reports a read timeout as SMTPServerDisconnected.
        if isinstance(err, TimeoutError) or isinstance(err.__context__, TimeoutError):
            raise MailError(
                f"the SMTP server {address} timed out after {smtp.timeout:g} s"
            ) from err
        raise MailError(f"sending through {address} failed: {err}") from err


def send_weekly(
    services: Services,
    portal: Portal,
    *,
    now: datetime | None = None,
    smtp: kpi_settings.SmtpSettings | None = None,
    force: bool = False,
) -> str:
    """Send last week's e-mail if it is due and not sent yet; return the outcome."""
    now = now or datetime.now(UTC)
    smtp = smtp or kpi_settings.smtp_settings()
    cfg = kpi_settings.load(services, portal)
    if smtp is None:
        return "skipped: no SMTP settings"
    if not cfg.owner_email:
        return "skipped: no owner e-mail"
    local = now.astimezone(ZoneInfo(portal_settings.timezone(portal)))
    if not force and (local.weekday() != SEND_WEEKDAY or local.hour < SEND_HOUR):
        return "skipped: not due"
    this_monday = local.date() - timedelta(days=local.weekday())
    week_start = this_monday - timedelta(days=7)
    if not claim(services, portal.id, "weekly_email", week_start):
        return "skipped: already sent"

    report = weekly_report(services, portal, week_start, now=now)
    message = build_message(
        report, sender=smtp.sender, recipient=cfg.owner_email, lang=portal.language
    )
    try:
        send(message, smtp)
    except MailError as err:
        # Without the claim row the next hourly run tries again.
        release(services, portal.id, "weekly_email", week_start)
        logger.warning(
            "weekly e-mail failed, will retry: %s",
            err,
            extra={"member_id": portal.member_id, "week": week_start.isoformat()},
        )
        raise
    mark(services, portal.id, "weekly_email", week_start, "sent")
    logger.info("weekly e-mail sent", extra={"member_id": portal.member_id})
    return "sent"
