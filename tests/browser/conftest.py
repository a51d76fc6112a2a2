"""Browser tests: Playwright for Python driving Debian's Chromium, headless, with axe-core.

Playwright's own browser download cannot work on these machines, so the browser is the
machine's: ``WEERBAAR_CHROMIUM`` when set, else ``/usr/bin/chromium`` (Debian's ``chromium``,
which ``./weerbaar test`` installs where it runs as root). Without it a browser test fails with
one line saying how to get one: it is never skipped.

While the browser is open, Playwright's sync API runs an event loop in the test's thread, so
``asyncio.run`` (``tests.support.reset_streams``, ``stream_messages``) fails there: a fixture that
needs it is set up before ``browser`` (pytest sets up fixtures of one scope in the order a test
names them, so a test names ``running_system`` first).

Every page runs as on a machine without internet: a request to any host but the loopback
addresses is aborted and recorded (``BrowserPage.outside``), so a test can assert that nothing
tried to leave.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, Route, sync_playwright

from tests import servers
from tests.support import mail_catcher, reset_streams, settings_for, system_on
from tools.embedded import free_port
from tools.system import PORTAL, System

DEFAULT_CHROMIUM = "/usr/bin/chromium"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
#: Enough for Swagger UI to fetch and render a document; a page that needs more is broken.
PAGE_TIMEOUT_MS = 15_000


def chromium_executable() -> tuple[str | None, str]:
    """The Chromium to drive, or None with the one line that says how to get one."""
    configured = os.environ.get("WEERBAAR_CHROMIUM")
    candidate = configured or DEFAULT_CHROMIUM
    found = shutil.which(candidate)
    if found:
        return found, ""
    where = f"WEERBAAR_CHROMIUM={configured}" if configured else DEFAULT_CHROMIUM
    return None, (
        f"no Chromium at {where}: `apt-get install chromium` (Debian, as root; `./weerbaar test`"
        " does it when it runs as root) or set WEERBAAR_CHROMIUM to a Chromium executable"
    )


def _require(executable: str | None, problem: str) -> str:
    # Never skipped: a browser test that cannot run is a failure, with the one line that says
    # how to get a Chromium (``./weerbaar test`` installs Debian's where it runs as root).
    if executable is None:
        pytest.fail(problem, pytrace=False)
    return executable


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium executable (the test fails, saying how to get one, when there is none)."""
    return _require(*chromium_executable())


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    """Headless Chromium for one test module."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class BrowserPage:
    """A page whose requests may reach only loopback, and what it tried beyond that."""

    page: Page
    #: Every URL the page asked for on another host (aborted).
    outside: list[str] = field(default_factory=list)
    #: Every URL the page loaded, in order.
    requested: list[str] = field(default_factory=list)
    #: Console errors and uncaught exceptions of the page's scripts.
    errors: list[str] = field(default_factory=list)

    def axe(self) -> list[dict[str, Any]]:
        """axe-core's violations on the page as it is now (each rule with its nodes)."""
        response: dict[str, Any] = Axe().run(self.page).response
        violations: list[dict[str, Any]] = response["violations"]
        return violations

    def history(self) -> list[str]:
        """The addresses of the tab's history entries (back and forward), as Chromium keeps
        them (asked through the DevTools protocol: a page's script can see only its own)."""
        session = self.page.context.new_cdp_session(self.page)
        try:
            entries: list[dict[str, Any]] = session.send("Page.getNavigationHistory")["entries"]
        finally:
            session.detach()
        return [entry["url"] for entry in entries]


SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots" / "portal"


def no_axe_violations(opened: BrowserPage, name: str) -> None:
    """axe-core finds nothing on the page as it is now; its screenshot is kept."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    opened.page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
    violations = opened.axe()
    assert violations == [], [
        (v["id"], [node["target"] for node in v["nodes"]]) for v in violations
    ]


def _only_loopback(opened: BrowserPage) -> Callable[[Route], None]:
    def handle(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).hostname in LOOPBACK_HOSTS:
            opened.requested.append(url)
            route.continue_()
        else:
            opened.outside.append(url)
            route.abort("internetdisconnected")

    return handle


@pytest.fixture
def offline_page(browser: Browser) -> Iterator[BrowserPage]:
    """A fresh browser context and page that cannot reach anything but loopback."""
    context = browser.new_context()
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    opened = BrowserPage(page)
    context.route("**/*", _only_loopback(opened))
    page.on(
        "console",
        lambda message: opened.errors.append(message.text) if message.type == "error" else None,
    )
    page.on("pageerror", lambda error: opened.errors.append(str(error)))
    try:
        yield opened
    finally:
        context.close()


@pytest.fixture(scope="module")
def running_system(
    request: pytest.FixtureRequest,
    chromium: str,
    postgres_server_url: str,
    nats_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[System]:
    """The five services as separate processes (as ``./weerbaar up`` runs them) on the
    session's PostgreSQL and NATS, on a database of their own, for one test module (not
    started when there is no browser to look at them); a module's ``SYSTEM_ENV`` adds
    settings."""
    extra_env: dict[str, str] = getattr(request.module, "SYSTEM_ENV", {})
    root: Path = tmp_path_factory.mktemp("browser")
    database = servers.create_database(postgres_server_url)
    try:
        reset_streams(settings_for(database, nats_url, root))
        with mail_catcher(root / "mail") as catcher:
            running = system_on(root / "data", database, nats_url, catcher, **extra_env)
            running.data_dir.mkdir(parents=True)
            running.start_services(timeout=90)
            try:
                yield running
            finally:
                running.stop()
    finally:
        servers.drop_database(postgres_server_url, database)


@pytest.fixture(scope="module")
def portal_url(running_system: System) -> str:
    """The portal as ``./weerbaar up`` runs it, in front of ``running_system``'s services
    (stopped with them)."""
    running_system.start_portal(timeout=60, port=free_port())
    return running_system.url(PORTAL)
