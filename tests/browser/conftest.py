"""Playwright against the system Chromium, one browser per test module.

Playwright cannot download browsers here; it drives /usr/bin/chromium (or
whatever `chromium` is on PATH). Screenshots go to CRM_SCREENSHOT_DIR
(default artifacts/screenshots) so CI can keep them.
"""

import os
import shutil
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; the ORM calls the
# tests make between page actions are ordinary synchronous calls all the same.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]


@pytest.fixture(scope="module")
def browser():
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("needs the system Chromium (chromium on PATH)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("needs Playwright for Python")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def screenshot_dir():
    folder = Path(os.environ.get("CRM_SCREENSHOT_DIR") or ROOT / "artifacts" / "screenshots")
    if not folder.is_absolute():
        folder = ROOT / folder
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def screenshot(screenshot_dir):
    def take(page, name, *, docs=False):
        target = screenshot_dir / f"{name}.png"
        page.screenshot(path=str(target), full_page=True)
        assert target.stat().st_size > 5000, f"{target} is suspiciously small"
        # The README's pictures are refreshed on request only, so a test run leaves the checkout clean.
        if docs and os.environ.get("CRM_UPDATE_DOCS_SCREENSHOTS") == "1":
            docs_dir = ROOT / "docs" / "screenshots"
            docs_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(target, docs_dir / target.name)
        return target

    return take


@pytest.fixture
def login(browser, live_server):
    """login(username, password, locale="en-GB") -> a Page signed in through the admin's login form."""
    contexts = []

    def sign_in(username, password, locale="en-GB"):
        context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(f"{live_server.url}/admin/login/?next=/admin/")
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        page.click("input[type=submit]")
        page.wait_for_url(f"{live_server.url}/admin/")
        return page

    yield sign_in
    for context in contexts:
        context.close()
