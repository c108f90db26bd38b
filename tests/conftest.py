"""Shared fixtures: databases (SQLite and PostgreSQL), the portal emulator,
the app on a real loopback HTTP server, and an installed portal.

Tests that take the ``database_url`` fixture run twice, once per backend.
PostgreSQL comes from TEST_DATABASE_URL (default: the local server, database
``test``, user ``postgres``). Outside CI a missing server skips those runs;
with CI=true it fails them.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "database_url" in getattr(item, "fixturenames", ()):
            backend = (
                item.callspec.params.get("database_url")
                if hasattr(item, "callspec")
                else None
            )
            if backend == "postgresql":
                item.add_marker(pytest.mark.postgres)


# Databases


class _PostgresTemplate:
    """A migrated template database; each test gets a fast copy of it."""

    def __init__(self, url: str) -> None:
        self.admin_url = make_url(url)
        self.name = f"otklik_tpl_{os.getpid()}"
        self.engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with self.engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{self.name}"'))
            connection.execute(text(f'CREATE DATABASE "{self.name}"'))
        from b24app.db import Database

        database = Database(self.url_for(self.name))
        database.upgrade()
        database.dispose()

    def url_for(self, name: str) -> str:
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def create(self) -> str:
        name = f"otklik_t_{uuid.uuid4().hex[:12]}"
        with self.engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{self.name}"'))
        return name

    def drop(self, name: str) -> None:
        with self.engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def close(self) -> None:
        self.drop(self.name)
        self.engine.dispose()


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[_PostgresTemplate | None]:
    url = os.environ.get("TEST_DATABASE_URL", DEFAULT_PG_URL)
    try:
        template = _PostgresTemplate(url)
    except Exception as err:  # any connection failure
        if IN_CI:
            pytest.fail(f"PostgreSQL at {make_url(url).host} is required in CI: {err}")
        yield None
        return
    yield template
    template.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path, postgres_template) -> Iterator[str]:
    """A fresh, migrated database URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'otklik.db'}"
        return
    if postgres_template is None:
        pytest.skip("PostgreSQL is not reachable (set TEST_DATABASE_URL)")
    name = postgres_template.create()
    yield postgres_template.url_for(name)
    postgres_template.drop(name)


# Servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerThread:
    """A threaded werkzeug server for a WSGI app on loopback."""

    def __init__(self, wsgi_app, port: int | None = None) -> None:
        self.port = port or free_port()
        self.server = make_server("127.0.0.1", self.port, wsgi_app, threaded=True)
        # A short poll interval lets shutdown() return at once instead of
        # after werkzeug's default half second, for every test that serves.
        self.thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)


@pytest.fixture
def emulator(tmp_path) -> Iterator:
    from b24app.emulator import EmulatorConfig
    from b24app.emulator.server import start_emulator

    handle = start_emulator(
        EmulatorConfig(rate=1000.0, burst=10000, seed=True),
        cert_dir=tmp_path / "certs",
    )
    yield handle
    handle.stop()


@pytest.fixture
def app_config(database_url, emulator, tmp_path) -> dict:
    port = free_port()
    return {
        "ENV": "test",
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret-key-not-for-production",  # noqa: S105
        "CLIENT_ID": emulator.config.client_id,
        "CLIENT_SECRET": emulator.config.client_secret,
        "OAUTH_URL": emulator.base_url,
        "CA_BUNDLE": str(emulator.ca_path),
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "PORT": port,
        "RATE_LIMIT": 1000.0,
        "RATE_BURST": 10000,
        "CHARTJS_URL": "/static/vendor/chart.umd.js",
        # The emulator's BX24 stub, so no page loads api.bitrix24.com.
        "BX24_JS_URL": f"{emulator.base_url}/_emulator/ui/bx24.js",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture
def app(app_config):
    from b24app import create_app

    application = create_app(app_config)
    yield application
    application.extensions["otklik"].close()


@pytest.fixture
def app_server(app, app_config) -> Iterator[ServerThread]:
    server = ServerThread(app, port=app_config["PORT"])
    yield server
    server.stop()


@pytest.fixture
def services(app):
    return app.extensions["otklik"]


@pytest.fixture
def installed(emulator, app_server, services):
    """The app installed on the emulated portal; returns the stored Portal."""
    from sqlalchemy import select

    from b24app.models import Portal

    emulator.portal.install_app(
        handler_url=f"{app_server.url}/app", install_url=f"{app_server.url}/install"
    )
    with services.db.session() as session:
        portal = session.scalar(select(Portal))
    assert portal is not None, "install did not store the portal"
    return portal


@pytest.fixture
def worker(services):
    from b24app.worker import Worker

    return Worker(services)


# Browser: Debian's Chromium driven by Playwright. Playwright's own browser
# download does not work offline, so the tests point it at the system
# Chromium. Outside CI a missing browser skips these tests; with CI=true it
# fails them. One Playwright instance serves the whole session.

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")
    if not path:
        if IN_CI:
            pytest.fail("Debian's chromium is required in CI (make test installs it)")
        pytest.skip("chromium is not installed (make test installs it)")
    return path


@pytest.fixture(scope="session")
def browser(chromium_path, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_FLAGS
        )
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    # The emulated portal serves HTTPS with its own test CA.
    context = browser.new_context(
        ignore_https_errors=True, viewport={"width": 1280, "height": 1000}
    )
    page = context.new_page()
    page.console_errors = []
    page.on(
        "console", lambda m: m.type == "error" and page.console_errors.append(m.text)
    )
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))
    yield page
    context.close()
