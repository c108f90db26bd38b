"""Otklik: lead tagging, first-response SLA and KPIs for Bitrix24 portals."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from b24app import features
from b24app.config import load_config
from b24app.logs import configure_logging
from b24app.services import Services

logger = logging.getLogger(__name__)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the WSGI app. Starts no threads: periodic jobs run in the worker."""
    settings = load_config(config)
    configure_logging(settings["LOG_LEVEL"])

    app = Flask(
        __name__,
        instance_path=settings["INSTANCE_PATH"],
        template_folder="../templates",
        static_folder="../static",
    )
    app.config.update(settings)
    app.config["MAX_CONTENT_LENGTH"] = 1 * 1024 * 1024

    features.load_features()
    services = Services(settings)
    if settings["RUN_MIGRATIONS"]:
        services.db.upgrade()
    app.extensions["otklik"] = services

    from handlers import (
        api,
        bot,
        events,
        install,
        placements,
        reminders,
        reports,
    )
    from handlers import settings as settings_page

    for blueprint in (
        install.bp,
        events.bp,
        placements.bp,
        api.bp,
        reports.bp,
        settings_page.bp,
        bot.bp,
        reminders.bp,
    ):
        app.register_blueprint(blueprint)

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @app.get("/favicon.ico")
    def favicon():
        return "", 204

    return app


def get_services(app: Flask | None = None) -> Services:
    from flask import current_app

    return (app or current_app).extensions["otklik"]
