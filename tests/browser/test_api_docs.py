"""Every service's `/docs` renders in Chromium without internet, and what axe-core says of it.

The five services run as processes on the session's PostgreSQL and NATS; the browser may reach
only loopback. Each service's page must show every operation of its OpenAPI document, load
nothing from elsewhere (not even try), and raise no script error.

Accessibility: axe-core finds no violation at all on the page, neither in our wrapper
(``shared.platform.apidocs``: our `<html>`, `<head>`, `<body>` and `<main>`) nor inside Swagger
UI's rendering (third-party markup and style sheet, changed by our ``apidocs.css`` and the plugin
in ``apidocs.js``). The two are told apart only to say where a violation is.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

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
