"""Install handler: the page Bitrix24 opens in an iframe until installFinish."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, render_template, request

from b24app import get_services
from b24app.bitrix.errors import BitrixCallError
from b24app.install import InstallError, InstallRequest, install_from_iframe

logger = logging.getLogger(__name__)

bp = Blueprint("install", __name__)


@bp.post("/install")
def install():
    """Confirm the portal, bind events and placements, then call installFinish."""
    services = get_services()

    try:
        install_request = InstallRequest.from_iframe(request.form, request.args)
        portal = install_from_iframe(services, install_request)
    except InstallError as err:
        return _error_page(str(err), err.status)
    except BitrixCallError as err:
        logger.warning(
            "install failed on a portal call",
            extra={"method": err.method, "code": err.code},
        )
        return _error_page("Не удалось связаться с порталом. Повторите установку.", 502)

    logger.info(
        "install finished on the app side", extra={"member_id": portal.member_id}
    )
    return render_template(
        "install.html",
        lang=install_request.language,
        bx24_js_url=current_app.config["BX24_JS_URL"],
    )


@bp.get("/")
@bp.get("/app")
@bp.get("/install")
def outside():
    """Explain the app to someone who opened its address in a browser.

    Bitrix24 opens these pages with a POST that carries the portal's
    authorisation; a plain GET comes from a person, not from a portal.
    """
    return render_template("outside.html", lang="ru")


def _error_page(message: str, status: int):
    return render_template("error.html", message=message), status
