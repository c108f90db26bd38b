"""Install simulation end to end with a tiny Flask app playing the marketplace app."""

from __future__ import annotations

import json
import threading

import pytest
from emu_helpers import RestClient, loopback_session
from flask import Flask, request
from werkzeug.serving import make_server

INSTALL_PAGE = """<!doctype html><html><head>
<script src="//api.bitrix24.com/api/v1/"></script></head><body>
<script>BX24.init(function () { BX24.installFinish(); });</script>
</body></html>"""


class FakeApp:
    """A loopback app: its installer binds an event and a placement over REST."""

    def __init__(self, ca_path, *, finish: bool = True) -> None:
        self.finish = finish
        self.installs: list[dict] = []
        self.events: list[dict] = []
        self.frames: list[dict] = []
        self.bind_results: list[int] = []
        self._ca_path = ca_path
        app = Flask("fake_otklik")
        app.add_url_rule("/install", view_func=self._install, methods=["POST"])
        app.add_url_rule("/events", view_func=self._event, methods=["POST"])
        app.add_url_rule("/frame", view_func=self._frame, methods=["POST"])
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )
        self._thread.start()

    def _install(self):
        self.installs.append({"args": dict(request.args), "form": dict(request.form)})
        endpoint = f"https://{request.args['DOMAIN']}/rest/"
        token = request.form["AUTH_ID"]
        session = loopback_session(self._ca_path)
        calls = [
            ("event.bind", {"event": "ONCRMLEADADD", "handler": f"{self.url}/events"}),
            (
                "event.bind",
                {"event": "ONAPPUNINSTALL", "handler": f"{self.url}/events"},
            ),
            (
                "placement.bind",
                {
                    "PLACEMENT": "CRM_LEAD_DETAIL_TAB",
                    "HANDLER": f"{self.url}/frame",
                    "TITLE": "Отклик",
                },
            ),
        ]
        for method, params in calls:
            response = session.post(
                endpoint + method, json={**params, "auth": token}, timeout=10
            )
            self.bind_results.append(response.status_code)
        return INSTALL_PAGE if self.finish else "<html>Настройка не завершена</html>"

    def _event(self):
        self.events.append(dict(request.form))
        return "ok"

    def _frame(self):
        self.frames.append({"args": dict(request.args), "form": dict(request.form)})
        return f"<html>lead {request.form.get('PLACEMENT_OPTIONS')}</html>"

    def received(self, name: str) -> list[dict]:
        return [event for event in list(self.events) if event.get("event") == name]

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)
        self._server.server_close()


@pytest.fixture
def fake_app(emulator):
    app = FakeApp(emulator.ca_path)
    yield app
    app.stop()


def test_install_finishes_and_binds(emulator, fake_app):
    result = emulator.portal.install_app(
        f"{fake_app.url}/frame", f"{fake_app.url}/install"
    )
    assert result.installed is True
    assert fake_app.bind_results == [200, 200, 200]
    assert emulator.portal.installed is True


def test_install_post_split_between_query_and_body(emulator, fake_app):
    emulator.portal.install_app(f"{fake_app.url}/frame", f"{fake_app.url}/install")
    post = fake_app.installs[0]
    assert set(post["args"]) == {"DOMAIN", "PROTOCOL", "LANG", "APP_SID"}
    assert post["args"]["DOMAIN"] == emulator.domain
    assert post["args"]["PROTOCOL"] == "1"
    assert {
        "AUTH_ID",
        "AUTH_EXPIRES",
        "REFRESH_ID",
        "SERVER_ENDPOINT",
        "APPLICATION_TOKEN",
        "APPLICATION_SCOPE",
        "member_id",
        "status",
        "PLACEMENT",
        "PLACEMENT_OPTIONS",
    } <= set(post["form"])
    assert post["form"]["PLACEMENT"] == "DEFAULT"


def test_app_info_reports_installed(emulator, fake_app):
    client = RestClient(emulator)
    before = client.result("app.info")["INSTALLED"]
    emulator.portal.install_app(f"{fake_app.url}/frame", f"{fake_app.url}/install")
    after = client.result("app.info")["INSTALLED"]
    assert before is False
    assert after is True


def test_install_without_finish_stays_pending(emulator):
    app = FakeApp(emulator.ca_path, finish=False)
    try:
        result = emulator.portal.install_app(f"{app.url}/frame", f"{app.url}/install")
    finally:
        app.stop()
    assert result.installed is False
    assert emulator.portal.installed is False


def test_onappinstall_sent_with_refresh_token(emulator, fake_app):
    # The app's URL is known only after it started, so it is set afterwards.
    emulator.config.app_install_event_url = f"{fake_app.url}/events"
    emulator.portal.install_app(f"{fake_app.url}/frame", f"{fake_app.url}/install")
    assert emulator.portal.wait_for(lambda: fake_app.received("ONAPPINSTALL"))
    event = fake_app.received("ONAPPINSTALL")[0]
    install_post = fake_app.installs[0]["form"]
    assert event["auth[refresh_token]"]
    assert event["auth[application_token]"] == install_post["APPLICATION_TOKEN"]
    assert event["data[INSTALLED]"] == "Y"
    assert event["auth[member_id]"] == emulator.config.member_id


def test_installed_app_receives_lead_events(emulator, fake_app):
    emulator.portal.install_app(f"{fake_app.url}/frame", f"{fake_app.url}/install")
    lead_id = emulator.portal.create_lead(
        {"NAME": "Аня"}, kind="form", message="Запись"
    )
    assert emulator.portal.wait_for(lambda: fake_app.received("ONCRMLEADADD"))
    assert fake_app.received("ONCRMLEADADD")[0]["data[FIELDS][ID]"] == str(lead_id)


def test_open_placement_posts_options(emulator, fake_app):
    emulator.portal.install_app(f"{fake_app.url}/frame", f"{fake_app.url}/install")
    response = emulator.portal.open_placement(
        "CRM_LEAD_DETAIL_TAB", {"ID": 17}, user_id=3
    )
    frame = fake_app.frames[0]
    assert response.status_code == 200
    assert frame["form"]["PLACEMENT"] == "CRM_LEAD_DETAIL_TAB"
    assert json.loads(frame["form"]["PLACEMENT_OPTIONS"]) == {"ID": "17"}
    assert frame["args"]["LANG"] == "ru"


def test_open_placement_uses_viewer_token(emulator, fake_app):
    emulator.portal.install_app(f"{fake_app.url}/frame", f"{fake_app.url}/install")
    emulator.portal.open_placement("CRM_LEAD_DETAIL_TAB", {"ID": 1}, user_id=4)
    token = fake_app.frames[0]["form"]["AUTH_ID"]
    profile = RestClient(emulator).result("profile", token=token)
    assert profile["ID"] == "4"


def test_open_placement_before_install_rejected(emulator):
    with pytest.raises(RuntimeError):
        emulator.portal.open_placement("CRM_LEAD_DETAIL_TAB", {"ID": 1})


def test_uninstall_sends_event_without_tokens(emulator, fake_app):
    emulator.portal.install_app(f"{fake_app.url}/frame", f"{fake_app.url}/install")
    emulator.portal.uninstall_app(clean=True)
    assert emulator.portal.wait_for(lambda: fake_app.received("ONAPPUNINSTALL"))
    event = fake_app.received("ONAPPUNINSTALL")[0]
    assert event["data[CLEAN]"] == "1"
    assert "auth[access_token]" not in event
    assert len(emulator.portal.event_bindings) == 0
    assert len(emulator.portal.placements) == 0


def test_control_api_install(emulator, fake_app):
    session = loopback_session(emulator.ca_path)
    response = session.post(
        f"{emulator.base_url}/_emulator/install",
        json={
            "handler_url": f"{fake_app.url}/frame",
            "install_url": f"{fake_app.url}/install",
        },
        timeout=30,
    )
    assert response.json() == {"installed": True, "status_code": 200}


def test_control_api_open_placement(emulator, fake_app):
    emulator.portal.install_app(f"{fake_app.url}/frame", f"{fake_app.url}/install")
    session = loopback_session(emulator.ca_path)
    response = session.post(
        f"{emulator.base_url}/_emulator/placements/open",
        json={"code": "CRM_LEAD_DETAIL_TAB", "options": {"ID": "5"}, "user_id": 2},
        timeout=30,
    )
    assert response.json()["status_code"] == 200
    assert '{"ID": "5"}' in response.json()["body"]


def test_install_refuses_non_loopback(emulator):
    with pytest.raises(ValueError):
        emulator.portal.install_app(
            "https://app.example/", "https://app.example/install"
        )
