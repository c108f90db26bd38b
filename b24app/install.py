"""Installing the app on a portal and keeping its bindings in place.

An install request is never trusted as it is: its refresh token is
exchanged at the configured OAuth server, and only the portal that server
names (``member_id``, ``client_endpoint``) is stored. A forged request for an
installed ``member_id`` therefore cannot replace that portal's domain,
endpoints or tokens.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from b24app import features
from b24app.bitrix.errors import BitrixCallError
from b24app.bitrix.oauth import OAuthError, TokenGrant
from b24app.models import Portal
from b24app.services import Services

logger = logging.getLogger(__name__)


class InstallError(Exception):
    """The install request is invalid or could not be confirmed."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class InstallRequest:
    member_id: str
    refresh_token: str
    application_token: str | None
    language: str

    @classmethod
    def from_iframe(cls, form: dict[str, str], args: dict[str, str]) -> InstallRequest:
        """Read the iframe POST (query string plus form body) of the installer."""
        member_id = (form.get("member_id") or "").strip()
        refresh_token = (form.get("REFRESH_ID") or "").strip()
        missing = [
            name
            for name, value in (("member_id", member_id), ("REFRESH_ID", refresh_token))
            if not value
        ]
        if missing:
            raise InstallError(f"install request is missing {', '.join(missing)}")
        return cls(
            member_id=member_id,
            refresh_token=refresh_token,
            application_token=(form.get("APPLICATION_TOKEN") or "").strip() or None,
            language=(args.get("LANG") or "ru")[:8],
        )


def confirm_grant(services: Services, member_id: str, refresh_token: str) -> TokenGrant:
    """Exchange the refresh token at the OAuth server and check the portal id."""
    try:
        grant = services.oauth.refresh(refresh_token)
    except OAuthError as err:
        logger.warning(
            "install not confirmed by the OAuth server",
            extra={"member_id": member_id, "code": err.code},
        )
        raise InstallError(
            "the OAuth server did not confirm this installation", 403
        ) from err

    if grant.member_id != member_id:
        logger.warning("install member_id mismatch", extra={"member_id": member_id})
        raise InstallError("the OAuth server confirmed a different portal", 403)
    return grant


def store_portal(
    services: Services,
    grant: TokenGrant,
    *,
    application_token: str | None,
    language: str | None = None,
) -> Portal:
    """Create or update the portal row from a confirmed grant."""
    now = datetime.now(UTC)
    with services.db.session() as session:
        portal = session.scalars(
            select(Portal).where(Portal.member_id == grant.member_id).with_for_update()
        ).one_or_none()
        if portal is None:
            portal = Portal(
                member_id=grant.member_id, token_version=0, settings={}, tag_options={}
            )
            session.add(portal)
            logger.info("portal created", extra={"member_id": grant.member_id})
        elif portal.domain != grant.domain:
            logger.info(
                "portal domain changed",
                extra={"member_id": grant.member_id, "domain": grant.domain},
            )

        portal.domain = grant.domain
        portal.client_endpoint = grant.client_endpoint
        portal.server_endpoint = grant.server_endpoint
        portal.scope = grant.scope
        services.tokens.store_grant(portal, grant)
        if application_token:
            portal.application_token_enc = services.box.encrypt(application_token)
        if language:
            portal.language = language
        if portal.status in (None, "inactive", "uninstalled"):
            portal.status = "installing"
        portal.inactive_reason = None
        portal.uninstalled_at = None
        portal.token_refreshed_at = now
        session.flush()
        session.expunge(portal)
    return portal


def install_from_iframe(services: Services, request: InstallRequest) -> Portal:
    """Confirm, store and bind: everything the installer page does server-side."""
    grant = confirm_grant(services, request.member_id, request.refresh_token)
    portal = store_portal(
        services,
        grant,
        application_token=request.application_token,
        language=request.language,
    )
    bind_portal(services, portal)
    return portal


def bind_portal(services: Services, portal: Portal) -> None:
    """Bind events, placements and the tag field; safe to repeat on reinstall."""
    client = services.client(portal)
    manifest = services.manifest
    public_url = services.config["PUBLIC_URL"]
    field = manifest["lead_tag_field"]
    uf_name = "UF_CRM_" + field["field_name"]

    existing, errors = client.batch(
        {
            "events": ("event.get", {}),
            "placements": ("placement.get", {}),
            "fields": ("crm.lead.userfield.list", {"filter": {"FIELD_NAME": uf_name}}),
        }
    )
    if errors:
        raise InstallError(
            f"reading the portal's bindings failed: {_first_error(errors)}", 502
        )

    commands = _binding_commands(manifest, public_url, existing, uf_name, field)
    if commands:
        _, errors = client.batch(commands)
        # A binding another install made a moment ago is not a failure.
        real = {
            k: v
            for k, v in errors.items()
            if "already" not in str(v.get("error_description", "")).lower()
        }
        if real:
            raise InstallError(f"binding the app failed: {_first_error(real)}", 502)

    tag_options = _read_tag_options(client, uf_name, field["options"])
    for step in features.install_steps():
        step(services, portal, client)
    with services.db.session() as session:
        row = session.get(Portal, portal.id)
        row.tag_field = uf_name
        row.tag_options = tag_options
        row.status = "active"
        row.installed_at = row.installed_at or datetime.now(UTC)
    portal.tag_field = uf_name
    portal.tag_options = tag_options
    portal.status = "active"
    logger.info(
        "portal bound", extra={"member_id": portal.member_id, "commands": len(commands)}
    )


def _binding_commands(
    manifest: dict[str, Any],
    public_url: str,
    existing: dict[str, Any],
    uf_name: str,
    field: dict[str, Any],
) -> dict[str, tuple[str, dict]]:
    events_url = public_url + manifest["handlers"]["events"]
    bound_events = {
        (str(row.get("event", "")).upper(), row.get("handler"))
        for row in existing.get("events") or []
    }
    commands: dict[str, tuple[str, dict]] = {}
    for name in manifest["events"]:
        if (name, events_url) not in bound_events:
            commands[f"event_{name}"] = (
                "event.bind",
                {"event": name, "handler": events_url},
            )

    bound_placements = {
        (str(row.get("placement", "")).upper(), row.get("handler"))
        for row in existing.get("placements") or []
    }
    for placement in manifest["placements"]:
        handler = public_url + placement["handler"]
        if (placement["code"], handler) in bound_placements:
            continue
        commands[f"placement_{placement['code']}"] = (
            "placement.bind",
            {
                "PLACEMENT": placement["code"],
                "HANDLER": handler,
                "TITLE": placement["title"]["ru"],
                "DESCRIPTION": placement["description"]["ru"],
                "LANG_ALL": {
                    lang: {
                        "TITLE": placement["title"][lang],
                        "DESCRIPTION": placement["description"][lang],
                    }
                    for lang in ("ru", "en")
                },
            },
        )

    if not existing.get("fields"):
        commands["tag_field"] = (
            "crm.lead.userfield.add",
            {
                "fields": {
                    "FIELD_NAME": field["field_name"],
                    "USER_TYPE_ID": "enumeration",
                    "MULTIPLE": "Y",
                    "SHOW_FILTER": "Y",
                    "EDIT_FORM_LABEL": field["label"],
                    "LIST_COLUMN_LABEL": field["label"],
                    "LIST_FILTER_LABEL": field["label"],
                    "LIST": [
                        {
                            "VALUE": label,
                            "XML_ID": f"OTKLIK_{code.upper()}",
                            "SORT": 10 * (i + 1),
                        }
                        for i, (code, label) in enumerate(field["options"].items())
                    ],
                }
            },
        )
    return commands


def _read_tag_options(client, uf_name: str, options: dict[str, str]) -> dict[str, str]:
    """Map each tag code to the enumeration option ID of the portal's field."""
    rows = client.call("crm.lead.userfield.list", {"filter": {"FIELD_NAME": uf_name}})
    if not rows:
        raise InstallError(
            f"the lead field {uf_name} was not created on the portal", 502
        )
    by_xml = {
        str(item.get("XML_ID", "")).upper(): str(item["ID"])
        for item in rows[0].get("LIST") or []
    }
    by_value = {
        str(item.get("VALUE", "")): str(item["ID"])
        for item in rows[0].get("LIST") or []
    }
    mapping = {}
    for code, label in options.items():
        option_id = by_xml.get(f"OTKLIK_{code.upper()}") or by_value.get(label)
        if option_id:
            mapping[code] = option_id
    return mapping


def _first_error(errors: dict[str, Any]) -> str:
    key, value = next(iter(errors.items()))
    if isinstance(value, dict):
        return (
            f"{key}: {value.get('error') or ''} {value.get('error_description') or ''}"
        )
    return f"{key}: {value}"


def handle_app_install_event(services: Services, auth: dict[str, str]) -> Portal:
    """Handle ONAPPINSTALL, confirming the portal at the OAuth server."""
    member_id = auth.get("member_id", "")
    refresh_token = auth.get("refresh_token", "")
    if not member_id or not refresh_token:
        raise InstallError("ONAPPINSTALL without member_id or refresh_token")
    grant = confirm_grant(services, member_id, refresh_token)
    portal = store_portal(
        services, grant, application_token=auth.get("application_token") or None
    )
    try:
        bind_portal(services, portal)
    except (BitrixCallError, InstallError) as err:
        # The installer page binds as well; a failure here is logged only.
        logger.warning(
            "binding on ONAPPINSTALL failed",
            extra={"member_id": member_id, "error": str(err)[:200]},
        )
    return portal
