"""Headless Chromium (Debian's package) driven by Playwright.

Playwright's own browser download does not work offline, so the tests point
it at the system Chromium. Outside CI a missing browser skips these tests;
with CI=true it fails them.
"""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


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
