"""Every service's `/docs` renders in Chromium without internet, and what axe-core says of it.

The five services run as processes on the session's PostgreSQL and NATS; the browser may reach
only loopback. Each service's page must show every operation of its OpenAPI document, load
nothing from elsewhere (not even try), and raise no script error.

Accessibility: axe-core finds no violation at all on the page, neither in our wrapper
(``shared.platform.apidocs``: our `<html>`, `<head>`, `<body>` and `<main>`) nor inside Swagger
UI's rendering (third-party markup and style sheet, changed by our ``apidocs.css`` and
``apidocs.js``), the two told apart only to say where a violation is. Not only as the page
loads: also with the authorization dialog open before and after a token is given, and with every
operation opened with the keyboard and tried out, three executed (a success, a refusal, a missing
parameter) and the schemas opened to the end. An operation opens with the keyboard, its address
names it, and that address opens it again.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from shared.platform.settings import SERVICES
from tests.browser.conftest import BrowserPage
from tools.system import System

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

#: For each node axe-core reports: is it inside Swagger UI's rendering (under our `<main>`)?
_INSIDE_SWAGGER_UI = """
(targets) => targets.map((selector) => {
  const element = document.querySelector(selector);
  const root = document.getElementById("swagger-ui");
  return element !== null && root !== null && element !== root && root.contains(element);
})
"""


def operations(document: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (METHOD, path) of an OpenAPI document, once for each of its tags (Swagger UI shows
    an operation under each of its tags)."""
    return sorted(
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
        for _ in operation.get("tags") or ["default"]
    )


def split_violations(
    offline_page: BrowserPage, violations: list[dict[str, Any]]
) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    """Violations inside Swagger UI's rendering and those of our wrapper, each as rule → the
    nodes' targets."""
    theirs: dict[str, list[Any]] = {}
    ours: dict[str, list[Any]] = {}
    for violation in violations:
        targets = [node["target"] for node in violation["nodes"]]
        # A target is a list of selectors only across frames; the page has none.
        inside = offline_page.page.evaluate(_INSIDE_SWAGGER_UI, [t[0] for t in targets])
        for target, in_swagger_ui in zip(targets, inside, strict=True):
            side = theirs if in_swagger_ui else ours
            side.setdefault(violation["id"], []).append(target)
    return theirs, ours


@pytest.mark.parametrize("service", SERVICES)
def test_docs_render_every_operation_without_internet(
    running_system: System, offline_page: BrowserPage, service: str
) -> None:
    base = running_system.url(service)
    expected = operations(httpx.get(f"{base}/openapi.json", timeout=10).json())
    page = offline_page.page

    page.goto(f"{base}/docs", wait_until="networkidle")

    assert offline_page.outside == [], "the page tried to leave loopback"
    blocks = page.locator(".opblock")
    expect(blocks).to_have_count(len(expected))
    shown = blocks.evaluate_all(
        """(blocks) => blocks.map((block) => [
             block.querySelector(".opblock-summary-method").textContent.trim(),
             block.querySelector(".opblock-summary-path").dataset.path,
           ])"""
    )
    assert sorted(map(tuple, shown)) == expected
    # What a reader sees: the path as text (Swagger UI puts zero-width spaces in it).
    first_path = blocks.first.locator(".opblock-summary-path")
    expect(first_path).to_be_visible()
    assert first_path.inner_text().replace("\u200b", "") == shown[0][1]
    assert offline_page.outside == [], "the page tried to leave loopback"
    assert offline_page.errors == []
    assert all(url.startswith(base) for url in offline_page.requested), offline_page.requested

    theirs, ours = split_violations(offline_page, offline_page.axe())
    assert ours == {}, "axe-core violations in our page around Swagger UI"
    assert theirs == {}, "axe-core violations inside Swagger UI's rendering"


#: Swagger UI's animations (an error's box grows in) have ended: axe-core checks colours as
#: they are, and mid-animation they are not yet what the style sheet says.
_ANIMATIONS_ENDED = "() => document.getAnimations().every((a) => a.playState !== 'running')"
#: What the browser logs for a response with an error status (one operation is executed with a
#: token that is not valid, on purpose).
_HTTP_ERROR_LOGGED = "Failed to load resource: the server responded with a status of"


def no_violations(offline_page: BrowserPage, state: str) -> None:
    """axe-core finds nothing on the page as it is now, in our wrapper or in Swagger UI."""
    offline_page.page.wait_for_function(_ANIMATIONS_ENDED)
    theirs, ours = split_violations(offline_page, offline_page.axe())
    assert ours == {}, f"{state}: axe-core violations in our page around Swagger UI"
    assert theirs == {}, f"{state}: axe-core violations inside Swagger UI's rendering"


def open_docs(page: Page, base: str) -> Locator:
    """The service's /docs page once Swagger UI has shown its operations; the operations."""
    page.goto(f"{base}/docs", wait_until="networkidle")
    blocks = page.locator(".opblock")
    expect(blocks.first).to_be_visible()
    return blocks


#: A path parameter's value for the operation executed with a token that is not valid.
_NIL_UUID = "00000000-0000-0000-0000-000000000000"


def executed(blocks: Locator) -> dict[str, Locator]:
    """The GET operations to execute, one for each answer Swagger UI shows: a success
    (`/health/live`), a refusal (the first GET with a lock, its path parameters filled in), and
    Swagger UI's own message that a required parameter is empty (the first GET with a path
    parameter and no lock). Not every operation: the contract's documents are large, and
    axe-core takes minutes over them once highlighted, to check the same elements again."""
    found: dict[str, Locator] = {}
    for index in range(blocks.count()):
        block = blocks.nth(index)
        if block.locator(".opblock-summary-method").inner_text() != "GET":
            continue
        path = block.locator(".opblock-summary-path").get_attribute("data-path") or ""
        if path == "/health/live":
            found.setdefault("success", block)
        elif block.locator(".authorization__btn").count():
            found.setdefault("refused", block)
        elif "{" in path:
            found.setdefault("empty parameter", block)
    assert set(found) == {"success", "refused", "empty parameter"}, set(found)
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_docs_in_use_have_no_axe_violations(
    running_system: System, offline_page: BrowserPage, service: str
) -> None:
    base = running_system.url(service)
    page = offline_page.page
    blocks = open_docs(page, base)

    page.locator(".auth-wrapper .btn.authorize").click()
    dialog = page.locator(".dialog-ux")
    expect(dialog).to_be_visible()
    no_violations(offline_page, "the authorization dialog")
    dialog.locator("input").fill("not-a-valid-token")
    dialog.locator(".btn.authorize").click()
    expect(dialog.get_by_role("button", name="Remove authorization")).to_be_visible()
    no_violations(offline_page, "the authorization dialog with a token")
    dialog.get_by_role("button", name="Close", exact=True).first.click()
    expect(dialog).to_have_count(0)

    for index in range(blocks.count()):
        control = blocks.nth(index).locator(".opblock-summary-control")
        control.press("Enter")
        expect(control).to_have_attribute("aria-expanded", "true")
        blocks.nth(index).locator(".try-out__btn").click()
    for answer_shown, block in executed(blocks).items():
        if answer_shown == "refused":
            for field in block.locator('tr[data-param-in="path"] input').all():
                field.fill(_NIL_UUID)
        block.locator(".execute").click()
        if answer_shown == "empty parameter":
            expect(block.locator(".validation-errors")).to_be_visible()
        else:
            status = block.locator(".live-responses-table tbody .response-col_status")
            # The code, and "Undocumented" after it where the document has no such response.
            code = "200" if answer_shown == "success" else "401"
            expect(status).to_have_text(re.compile(rf"^\s*{code}\b"))
    # The schemas are listed open; "Expand all" opens each to the end. From the last one up:
    # what a click opens comes after it, so the buttons before it keep their place.
    expect(page.locator(".models-control")).to_have_attribute("aria-expanded", "true")
    expand_all = page.locator(".models .json-schema-2020-12-expand-deep-button")
    for index in reversed(range(expand_all.count())):
        expand_all.nth(index).click()
    no_violations(offline_page, "every operation open and tried, three executed, schemas open")

    assert offline_page.outside == [], "the page tried to leave loopback"
    # The browser logs the refusal (401); nothing else may be logged.
    assert [e for e in offline_page.errors if not e.startswith(_HTTP_ERROR_LOGGED)] == []


@pytest.mark.parametrize("service", SERVICES)
def test_an_operation_opens_with_the_keyboard_and_its_address_opens_it(
    running_system: System, offline_page: BrowserPage, service: str
) -> None:
    base = running_system.url(service)
    page = offline_page.page
    blocks = open_docs(page, base)
    first = blocks.first
    control = first.locator(".opblock-summary-control")

    # From the top of the page, Tab reaches the first operation's button (after the
    # openapi.json link, the Authorize button and the first tag's link and button).
    for _ in range(10):
        page.keyboard.press("Tab")
        if control.evaluate("(element) => element === document.activeElement"):
            break
    expect(control).to_be_focused()
    page.keyboard.press("Enter")

    expect(control).to_have_attribute("aria-expanded", "true")
    tag = page.locator(".opblock-tag").first.get_attribute("data-tag")
    block_id = first.get_attribute("id")
    assert tag is not None and block_id is not None
    operation_id = block_id.removeprefix(f"operations-{tag}-")
    expect(page).to_have_url(f"{base}/docs#/{tag}/{operation_id}")
    # The path is text inside the button, not a second stop for the keyboard.
    page.keyboard.press("Tab")
    assert not control.evaluate("(element) => element.contains(document.activeElement)")

    opened = offline_page.page.context.new_page()
    opened.goto(page.url, wait_until="networkidle")
    expect(opened.locator(f"#{block_id} .opblock-summary-control")).to_have_attribute(
        "aria-expanded", "true"
    )
    opened.close()
