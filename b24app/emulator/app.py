"""WSGI factory of the emulator: one Flask app per portal."""

from __future__ import annotations

import logging

from flask import Flask, request

from . import control, oauth, rest, ui
from .config import EmulatorConfig
from .state import Portal

logger = logging.getLogger(__name__)


def create_emulator(config: EmulatorConfig | None = None) -> Flask:
    """Build the portal emulator. `app.extensions["emulator"]` is its `Portal`.

    The portal learns its address from `start_emulator`. When it is served
    some other way (a Flask test client), it takes the host of its first
    request.
    """
    config = config or EmulatorConfig()
    portal = Portal(config)
    app = Flask("b24app.emulator")
    app.extensions["emulator"] = portal
    app.register_blueprint(rest.bp)
    app.register_blueprint(oauth.bp)
    app.register_blueprint(control.bp)
    app.register_blueprint(ui.bp)

    @app.before_request
    def _learn_address() -> None:
        if portal.base_url is None:
            portal.set_address(request.host, request.host_url)

    @app.get("/favicon.ico")
    def favicon():
        return "", 204

    @app.get("/")
    def index():
        return {
            "portal": portal.domain,
            "member_id": config.member_id,
            "installed": portal.installed,
        }

    logger.info("emulator created for member %s", config.member_id)
    return app
