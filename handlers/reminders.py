"""Reminder settings, templates, consents and A/B tests: the page and its JSON API.

The page is opened with the signed placement token, like the SLA settings;
every API call carries it as a Bearer header. Only portal administrators may
use it. Errors come back as ``{"error": ..., "errors": {field: message}}``.

* ``GET|PUT /api/v1/reminders/settings`` (secrets are write-only);
* ``POST /api/v1/reminders/preview`` ``{"text", "appointment_id"?}``;
* ``GET /api/v1/reminders/appointments``: messages and delivery status;
* ``GET|POST|DELETE /api/v1/reminders/consents``;
* ``GET|POST /api/v1/reminders/experiments``, ``GET .../<id>``,
  ``POST .../<id>/promote``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import wraps
from typing import Any

from flask import Blueprint, g, jsonify, render_template, request
from sqlalchemy import select
from werkzeug.exceptions import RequestEntityTooLarge

from b24app import get_services, portal_settings
from b24app.models import Portal
from b24app.placement_auth import PlacementDenied, read_api_token
from b24app.reminders import abtest, admin, config, consent, templates, webhooks
from b24app.reminders.models import Appointment, Experiment

logger = logging.getLogger(__name__)

bp = Blueprint("reminders", __name__)


# Consents saved by one import request.
MAX_IMPORT = 1000


class ApiError(Exception):
    def __init__(
        self, message: str, status: int = 400, errors: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.errors = errors


@bp.errorhandler(ApiError)
def _api_error(err: ApiError):
    body: dict[str, Any] = {"error": str(err)}
    if err.errors:
        body["errors"] = err.errors
    return jsonify(body), err.status


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_err: RequestEntityTooLarge):
    return jsonify(error="Слишком большой запрос. / Request body too large."), 413


def _authorise(token: str) -> Portal:
    services = get_services()
    try:
        viewer = read_api_token(services, token)
    except PlacementDenied as err:
        raise ApiError(str(err), err.status) from err
    with services.db.session() as session:
        portal = session.get(Portal, viewer.portal_id)
    if portal is None or portal.member_id != viewer.member_id or not portal.is_active:
        raise ApiError("portal is not active", 403)
    if not viewer.is_admin:
        raise ApiError("Напоминания настраивает только администратор портала.", 403)
    g.viewer = viewer
    return portal


def admin_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            raise ApiError("missing Authorization: Bearer token", 401)
        g.portal = _authorise(header.removeprefix("Bearer ").strip())
        return view(*args, **kwargs)

    return wrapper


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError("send a JSON object")
    return body


@bp.route("/reminders", methods=["GET", "POST"])
def page():
    token = (request.form.get("token") or request.args.get("token") or "").strip()
    if not token:
        return render_template(
            "error.html", message="Откройте напоминания из приложения в Битрикс24."
        ), 401
    try:
        portal = _authorise(token)
    except ApiError as err:
        return render_template("error.html", message=str(err)), err.status
    response = render_template(
        "reminders.html",
        lang="en" if (g.viewer.language or "").startswith("en") else "ru",
        timezone=portal_settings.timezone(portal),
        api_token=token,
        placeholders=templates.PLACEHOLDERS,
        bx24_js_url=get_services().config["BX24_JS_URL"],
    )
    return (
        response,
        200,
        {
            "Content-Security-Policy": f"frame-ancestors https://{portal.domain}",
            "Cache-Control": "no-store",
        },
    )


@bp.get("/api/v1/reminders/settings")
@admin_required
def get_settings():
    services = get_services()
    portal = g.portal
    sms_secret = config.ensure_sms_secret(services, portal.id)
    base = services.config.get("PUBLIC_URL", "").rstrip("/")
    notes = admin.booking_notes(services, portal)
    notes += webhooks.legacy_notes(config.settings(portal))
    return jsonify(
        settings=admin.public_settings(portal),
        # IANA zone the page shows appointment times in (read-only here).
        timezone=portal_settings.timezone(portal),
        notes=notes,
        placeholders=templates.PLACEHOLDERS,
        webhooks={
            "telegram": f"{base}/bot/telegram/{portal.id}",
            # The secret travels as Basic credentials, never in the path.
            "sms_reply": webhooks.callback_url(base, portal.id, sms_secret, "reply"),
            "sms_status": webhooks.callback_url(base, portal.id, sms_secret, "status"),
            "sms_signature_header": webhooks.SIGNATURE_HEADER,
        },
    )


@bp.put("/api/v1/reminders/settings")
@admin_required
def put_settings():
    try:
        saved = admin.update_settings(get_services(), g.portal, _body())
    except admin.SettingsError as err:
        raise ApiError("Проверьте поля.", 422, err.errors) from err
    return jsonify(settings=saved)


@bp.post("/api/v1/reminders/preview")
@admin_required
def preview():
    body = _body()
    text = body.get("text") or ""
    if not isinstance(text, str):
        raise ApiError("text: нужна строка с текстом шаблона.")
    values = templates.sample_values()
    appointment_id = body.get("appointment_id")
    services = get_services()
    if appointment_id is not None:
        if not _is_id(appointment_id):
            raise ApiError("appointment_id: нужен номер записи.")
        with services.db.session() as session:
            row = session.get(Appointment, appointment_id)
        if row is None or row.portal_id != g.portal.id:
            raise ApiError("no such appointment", 404)
        values = templates.values_for(
            client_name=row.client_name,
            service=row.service,
            starts_at=row.starts_at,
            tz=portal_settings.timezone(g.portal),
            address=config.settings(g.portal).get("address"),
            master=row.master,
        )
    check = templates.validate(text, values)
    rendered = templates.render(text, values) if check.ok else None
    return jsonify(check=check.to_json(), text=rendered, values=values)


@bp.get("/api/v1/reminders/appointments")
@admin_required
def appointments_list():
    raw = request.args.get("limit", "50")
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise ApiError("limit: целое число от 1 до 200.")
    limit = min(int(raw), 200)
    return jsonify(
        appointments=admin.appointment_list(get_services(), g.portal.id, limit)
    )


@bp.get("/api/v1/reminders/consents")
@admin_required
def consent_list():
    key = request.args.get("contact_key", "")
    rows = consent.consents(get_services(), g.portal.id, key)
    return jsonify(
        consents=[
            {
                "channel": row.channel,
                "status": row.status,
                "source": row.source,
                "address": consent.mask_phone(row.address)
                if row.channel == "sms"
                else row.address,
                "granted_at": row.granted_at.isoformat() if row.granted_at else None,
                "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
            }
            for row in rows
        ]
    )


@bp.post("/api/v1/reminders/consents")
@admin_required
def consent_add():
    """Record one consent, or ``{"items": [...]}`` for an import."""
    body = _body()
    items = body.get("items") if isinstance(body.get("items"), list) else [body]
    if not items or len(items) > MAX_IMPORT:
        raise ApiError(f"items: от 1 до {MAX_IMPORT} согласий за раз.")
    services = get_services()
    default_source = "import" if len(items) > 1 else "admin"
    errors: dict[str, str] = {}
    saved = 0
    for index, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise consent.ConsentError("Согласие — объект с полями.")
            key = item.get("contact_key")
            if not consent.is_contact_key(key):
                raise consent.ConsentError("contact_key: contact:<id> или deal:<id>.")
            channel = item.get("channel")
            if channel not in config.CHANNELS:
                raise consent.ConsentError("Неизвестный канал.")
            consent.grant(
                services,
                g.portal.id,
                key,
                channel,
                source=str(item.get("source") or default_source),
                address=item.get("address"),
            )
            saved += 1
        except consent.ConsentError as err:
            errors[str(index)] = str(err)
    status = 200 if not errors else 422
    return jsonify(saved=saved, errors=errors), status


@bp.delete("/api/v1/reminders/consents")
@admin_required
def consent_revoke():
    body = _body()
    key = body.get("contact_key")
    if not consent.is_contact_key(key):
        raise ApiError("contact_key: contact:<id> или deal:<id>.")
    channel = body.get("channel")
    if channel is not None and channel not in config.CHANNELS:
        raise ApiError("channel: " + ", ".join(config.CHANNELS) + " или пусто.")
    count = consent.revoke(
        get_services(),
        g.portal.id,
        key,
        (channel,) if channel else None,
        source="admin",
    )
    return jsonify(revoked=count)


@bp.get("/api/v1/reminders/experiments")
@admin_required
def experiment_list():
    with get_services().db.session() as session:
        rows = session.scalars(
            select(Experiment)
            .where(Experiment.portal_id == g.portal.id)
            .order_by(Experiment.id.desc())
        ).all()
    return jsonify(
        experiments=[
            {"id": r.id, "name": r.name, "status": r.status, "winner": r.winner}
            for r in rows
        ]
    )


@bp.post("/api/v1/reminders/experiments")
@admin_required
def experiment_add():
    try:
        experiment = admin.create_experiment(get_services(), g.portal.id, _body())
    except abtest.ExperimentError as err:
        raise ApiError(str(err), 422) from err
    return jsonify(id=experiment.id), 201


def _own_experiment(experiment_id: int) -> None:
    with get_services().db.session() as session:
        experiment = session.get(Experiment, experiment_id)
    if experiment is None or experiment.portal_id != g.portal.id:
        raise ApiError("no such experiment", 404)


@bp.get("/api/v1/reminders/experiments/<int:experiment_id>")
@admin_required
def experiment_get(experiment_id: int):
    _own_experiment(experiment_id)
    return jsonify(admin.experiment_report(get_services(), experiment_id))


@bp.post("/api/v1/reminders/experiments/<int:experiment_id>/promote")
@admin_required
def experiment_promote(experiment_id: int):
    _own_experiment(experiment_id)
    try:
        report = admin.promote(get_services(), g.portal, experiment_id)
    except abtest.ExperimentError as err:
        raise ApiError(str(err), 409) from err
    return jsonify(report)


@bp.get("/api/v1/reminders/telegram-link")
@admin_required
def telegram_link():
    """Return the deep link a client opens to subscribe in Telegram."""
    key = request.args.get("contact_key", "")
    if not consent.is_contact_key(key):
        raise ApiError("contact_key: contact:<id> или deal:<id>.")
    issued_at = datetime.now(UTC)
    code = consent.link_code(get_services(), g.portal.id, key, issued_at=issued_at)
    username = (config.settings(g.portal).get("telegram") or {}).get("bot_username")
    url = f"https://t.me/{username}?start={code}" if username else None
    expires_at = consent.link_code_expires_at(issued_at)
    return jsonify(code=code, url=url, expires_at=expires_at.isoformat())
