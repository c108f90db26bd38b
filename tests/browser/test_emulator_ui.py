"""The emulated portal's pages in headless Chromium: install wizard and BX24 stub.

The install page frames the app's installer with the portal's POST fields
and finishes the install only when the page calls ``BX24.installFinish()``.
The BX24 stub served by the emulator resizes the portal's iframe on
``resizeWindow`` and ``fitWindow``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from sqlalchemy import select
from werkzeug.wrappers import Request, Response

from tests.conftest import ServerThread

STUB_PATH = "/_emulator/ui/bx24.js"
FRAME_TIMEOUT_MS = 15000

# Page actions of the test app, run in BX24.init.
ACTIONS = {
    "none": "",
    "finish": "BX24.installFinish();",
    "resize": "BX24.resizeWindow(640, 480);",
    "resize-full": "BX24.resizeWindow('100%', 0);",
    "resize-text": "BX24.resizeWindow('wide', 350);",
    "fit": "BX24.fitWindow();",
}


@pytest.fixture
def app_config(app_config, emulator) -> dict:
    """App settings whose pages load the emulator's BX24 stub."""
    return {**app_config, "BX24_JS_URL": f"{emulator.base_url}{STUB_PATH}"}


class FramedPage:
    """A test app: every POST gets a page that loads the BX24 stub.

    The query string picks what the page does after ``BX24.init``
    (``action``, a key of ACTIONS) and how tall its content is (``height``).
    """

    def __init__(self, stub_url: str) -> None:
        self.stub_url = stub_url
        self.forms: list[dict[str, str]] = []
        self.server = ServerThread(self._wsgi)

    def url(self, action: str, height: int = 200) -> str:
        return (
            f"{self.server.url}/page?{urlencode({'action': action, 'height': height})}"
        )

    def _wsgi(self, environ, start_response):
        request = Request(environ)
        self.forms.append(dict(request.form))
        script = ACTIONS[request.args.get("action", "none")]
        height = int(request.args.get("height", "200"))
        body = f"""<!doctype html>
<html><head><meta charset="utf-8"><script src="{self.stub_url}"></script></head>
<body style="margin: 0">
<div id="content" style="height: {height}px">Страница приложения</div>
<script>
BX24.init(function () {{ {script} document.body.dataset.ready = "true"; }});
</script>
</body></html>"""
        return Response(body, mimetype="text/html")(environ, start_response)


@pytest.fixture
def framed(emulator) -> Iterator[FramedPage]:
    page = FramedPage(f"{emulator.base_url}{STUB_PATH}")
    yield page
    page.server.stop()


def _portal_session(emulator) -> requests.Session:
    """Return a session that trusts the emulator's CA and ignores proxy settings."""
    session = requests.Session()
    session.trust_env = False
    session.verify = str(emulator.ca_path)
    return session


def _install_url(emulator, handler_url: str, install_url: str | None) -> str:
    query = {"handler_url": handler_url}
    if install_url:
        query["install_url"] = install_url
    return f"{emulator.base_url}/_emulator/ui/install?{urlencode(query)}"


def _open_main_page(page, emulator, framed: FramedPage, action: str, height=200):
    """Install the test app without an installer and open its main page."""
    emulator.portal.install_app(handler_url=framed.url(action, height))
    page.goto(f"{emulator.base_url}/_emulator/ui/placement/DEFAULT")
    frame = page.frame_locator("#app-frame")
    frame.locator("body[data-ready='true']").wait_for(timeout=FRAME_TIMEOUT_MS)
    return frame


def _wait_resized(page, times: int = 1) -> dict:
    page.wait_for_function(
        f"Number(document.getElementById('app-frame').dataset.resized) >= {times}",
        timeout=FRAME_TIMEOUT_MS,
    )
    return page.locator("#app-frame").evaluate(
        "f => ({width: f.style.width, height: f.style.height,"
        " box: f.getBoundingClientRect().toJSON()})"
    )


# Install wizard


@pytest.mark.browser
def test_install_page_installs_real_app(page, emulator, app_server, services):
    from b24app.models import Portal

    url = _install_url(emulator, f"{app_server.url}/app", f"{app_server.url}/install")

    with page.expect_request(lambda r: urlsplit(r.url).path == "/install") as posted:
        page.goto(url)
    page.wait_for_url("**/_emulator/ui/placement/DEFAULT", timeout=FRAME_TIMEOUT_MS)
    page.frame_locator("#app-frame").locator("#kpi").wait_for(timeout=FRAME_TIMEOUT_MS)

    request = posted.value
    query = parse_qs(urlsplit(request.url).query)
    form = parse_qs(request.post_data)
    assert request.method == "POST"
    assert set(query) >= {"DOMAIN", "PROTOCOL", "LANG", "APP_SID"}
    assert query["DOMAIN"] == [emulator.domain]
    assert form["PLACEMENT"] == ["DEFAULT"]
    assert form["member_id"] == [emulator.config.member_id]
    assert set(form) >= {"AUTH_ID", "REFRESH_ID", "SERVER_ENDPOINT", "AUTH_EXPIRES"}
    assert emulator.portal.installed
    assert len(emulator.portal.event_bindings) > 0
    with services.db.session() as session:
        stored = session.scalar(select(Portal))
    assert stored is not None
    assert stored.member_id == emulator.config.member_id
    assert page.console_errors == []


@pytest.mark.browser
def test_install_waits_for_install_finish(page, emulator, framed):
    page.goto(_install_url(emulator, framed.url("none"), framed.url("none")))
    frame = page.frame_locator("#app-frame")
    frame.locator("body[data-ready='true']").wait_for(timeout=FRAME_TIMEOUT_MS)
    page.wait_for_timeout(300)

    assert not emulator.portal.installed
    assert "installFinish" in page.locator("#frame-status").inner_text()
    assert page.locator("body").get_attribute("data-installed") is None
    assert framed.forms[-1]["PLACEMENT"] == "DEFAULT"
    placement = page.request.get(f"{emulator.base_url}/_emulator/ui/placement/DEFAULT")
    assert placement.status == 409


@pytest.mark.browser
def test_install_finish_opens_main_page(page, emulator, framed):
    main_url = framed.url("none", height=123)
    page.goto(_install_url(emulator, main_url, framed.url("finish")))

    page.wait_for_url("**/_emulator/ui/placement/DEFAULT", timeout=FRAME_TIMEOUT_MS)
    frame = page.frame_locator("#app-frame")
    frame.locator("body[data-ready='true']").wait_for(timeout=FRAME_TIMEOUT_MS)

    assert emulator.portal.installed
    assert frame.locator("#content").evaluate("e => e.offsetHeight") == 123
    assert page.console_errors == []


@pytest.mark.browser
def test_install_finish_ignored_on_placement(page, emulator, framed):
    emulator.portal.install_app(handler_url=framed.url("finish"))
    finishes: list[str] = []
    page.on("request", lambda r: "/install/finish" in r.url and finishes.append(r.url))

    page.goto(f"{emulator.base_url}/_emulator/ui/placement/DEFAULT")
    frame = page.frame_locator("#app-frame")
    frame.locator("body[data-ready='true']").wait_for(timeout=FRAME_TIMEOUT_MS)
    page.wait_for_timeout(300)

    assert finishes == []
    assert page.url.endswith("/_emulator/ui/placement/DEFAULT")


def test_install_finish_without_pending_install(emulator, framed):
    session = _portal_session(emulator)
    emulator.portal.install_app(handler_url=framed.url("none"))
    finish_url = f"{emulator.base_url}/_emulator/ui/install/finish"

    installed = session.post(finish_url, timeout=10)
    emulator.portal.uninstall_app()
    absent = session.post(finish_url, timeout=10)

    assert installed.status_code == 409
    assert "already installed" in installed.json()["error_description"]
    assert absent.status_code == 404
    assert "/_emulator/ui/install" in absent.json()["error_description"]


def test_install_page_rejects_remote_url(emulator):
    session = _portal_session(emulator)
    response = session.get(
        _install_url(emulator, "https://example.com/app", None), timeout=10
    )

    assert response.status_code == 400
    assert "loopback" in response.text
    assert not emulator.portal.installed


# Frame size


@pytest.mark.browser
def test_frame_starts_at_fixed_height(page, emulator, framed):
    _open_main_page(page, emulator, framed, "none")

    box = page.locator("#app-frame").bounding_box()

    assert box is not None
    assert 895 <= box["height"] <= 905


@pytest.mark.browser
def test_resize_window_sets_frame_size(page, emulator, framed):
    _open_main_page(page, emulator, framed, "resize")

    size = _wait_resized(page)

    assert size["width"] == "640px"
    assert size["height"] == "480px"
    # The frame has a 1 px border on each side.
    assert size["box"]["width"] == 642
    assert size["box"]["height"] == 482
    assert page.console_errors == []


@pytest.mark.browser
def test_resize_window_full_width_keeps_height(page, emulator, framed):
    _open_main_page(page, emulator, framed, "resize-full")

    size = _wait_resized(page)

    assert size["width"] == ""
    assert size["height"] == ""
    # The page's CSS width: the page width less 16 px margins, plus the border.
    page_width = page.evaluate("document.documentElement.clientWidth")
    assert size["box"]["width"] == page_width - 32 + 2
    assert 895 <= size["box"]["height"] <= 905


@pytest.mark.browser
def test_resize_window_text_width_is_100px(page, emulator, framed):
    _open_main_page(page, emulator, framed, "resize-text")

    size = _wait_resized(page)

    assert size["width"] == "100px"
    assert size["height"] == "350px"


@pytest.mark.browser
def test_fit_window_grows_to_content(page, emulator, framed):
    frame = _open_main_page(page, emulator, framed, "fit", height=1500)

    size = _wait_resized(page)
    scroll = frame.locator("body").evaluate("() => BX24.getScrollSize()")

    assert scroll["scrollHeight"] == 1500
    assert size["height"] == "1500px"
    assert size["width"] == ""
    assert frame.locator("body").evaluate(
        "() => document.documentElement.scrollHeight <= window.innerHeight"
    )


@pytest.mark.browser
def test_fit_window_shrinks_to_content(page, emulator, framed):
    _open_main_page(page, emulator, framed, "fit", height=300)

    size = _wait_resized(page)

    assert size["height"] == "300px"
    assert size["box"]["height"] == 302


@pytest.mark.browser
def test_stub_exposes_frame_data(page, emulator, framed):
    options = {"ID": "42"}
    emulator.portal.install_app(handler_url=framed.url("none"))
    page.goto(
        f"{emulator.base_url}/_emulator/ui/placement/DEFAULT"
        f"?{urlencode({'options': json.dumps(options)})}"
    )
    frame = page.frame_locator("#app-frame")
    frame.locator("body[data-ready='true']").wait_for(timeout=FRAME_TIMEOUT_MS)

    info = frame.locator("body").evaluate(
        "() => ({auth: BX24.getAuth(), domain: BX24.getDomain(),"
        " placement: BX24.placement.info(), admin: BX24.isAdmin(),"
        " ready: BX24.isReady()})"
    )

    assert info["ready"] is True
    assert info["domain"] == emulator.domain
    assert info["admin"] is True
    assert info["placement"] == {"placement": "DEFAULT", "options": options}
    assert info["auth"]["access_token"] == framed.forms[-1]["AUTH_ID"]
    assert info["auth"]["member_id"] == emulator.config.member_id
