"""`/docs` without internet: the page refers only to files the service itself serves.

FastAPI's default page loads Swagger UI from a CDN (blank without internet);
``shared.platform.apidocs`` serves the files itself. The page every service gets from
``create_app`` is checked here without a browser; ``tests/browser/test_api_docs.py`` renders
each running service's page in Chromium.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from fastapi.testclient import TestClient

from shared.platform import apidocs
from shared.platform.apidocs import ASSETS
from shared.platform.http import PROBLEM_JSON, create_app

BASE = "http://testserver"
#: What each kind of file the page refers to must be served as.
MEDIA_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
    ".json": "application/json",
}


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.extend(
            value for name, value in attrs if name in {"src", "href", "data-openapi-url"} and value
        )


def page_references(html: str) -> list[str]:
    """Every file the page loads: the `src` and `href` attributes and the OpenAPI document's
    address, which ``apidocs.js`` gives Swagger UI."""
    parser = _References()
    parser.feed(html)
    return parser.found


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = create_app(service="intake", title="Weerbaar — intake", version="test")
    return TestClient(app, base_url=BASE)


def test_the_page_names_no_other_host(client: TestClient) -> None:
    response = client.get("/docs")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert not re.search(r"https?:|//", response.text), "an absolute URL in the page"
    references = page_references(response.text)
    # Two style sheets, icon, two scripts, OpenAPI document.
    assert len(references) == 6
    for reference in references:
        assert not urlsplit(reference).scheme and not urlsplit(reference).netloc, reference


def test_every_file_the_page_refers_to_is_served_as_what_it_is(client: TestClient) -> None:
    page = f"{BASE}/docs"
    for reference in page_references(client.get("/docs").text):
        response = client.get(urljoin(page, reference))

        assert response.status_code == 200, reference
        suffix = "." + reference.rsplit(".", 1)[-1]
        assert response.headers["content-type"].split(";")[0] == MEDIA_TYPES[suffix], reference
        assert response.content, reference


def test_the_page_works_behind_a_path_prefix(client: TestClient) -> None:
    # Behind the proxy the page is /intake/docs: every reference stays under /intake/.
    page = "https://weerbaar.example.nl/intake/docs"
    for reference in page_references(client.get("/docs").text):
        assert urljoin(page, reference).startswith("https://weerbaar.example.nl/intake/")


def test_the_page_has_a_language_and_a_main_landmark(client: TestClient) -> None:
    html = client.get("/docs").text

    assert '<html lang="en">' in html
    assert '<main id="swagger-ui" data-openapi-url="openapi.json"></main>' in html


def test_the_page_has_no_inline_script_or_style(client: TestClient) -> None:
    # Swagger UI is started by apidocs.js and styled by files: a Content-Security-Policy
    # without 'unsafe-inline' would not change the page.
    html = client.get("/docs").text

    assert re.findall(r"<script\b[^>]*>", html) == [
        '<script src="docs/assets/swagger-ui-bundle.js">',
        '<script src="docs/assets/apidocs.js">',
    ]
    assert "<style" not in html and "style=" not in html


def test_our_style_sheet_comes_after_swagger_uis(client: TestClient) -> None:
    # The override wins over Swagger UI's rules of the same specificity only if it is later.
    html = client.get("/docs").text

    assert html.index("docs/assets/swagger-ui.css") < html.index("docs/assets/apidocs.css")


def test_the_assets_are_swagger_uis_own_files(client: TestClient) -> None:
    script = client.get("/docs/assets/swagger-ui-bundle.js")

    assert "SwaggerUIBundle" in script.text
    assert script.headers["cache-control"] == "public, max-age=86400"
    assert set(ASSETS) == {
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "favicon-32x32.png",
        "apidocs.js",
        "apidocs.css",
    }


def test_our_files_are_served_from_the_package(client: TestClient) -> None:
    # Next to shared/platform/apidocs.py, so the wheel and the image carry them.
    folder = Path(apidocs.__file__).with_name("apidocs_files")
    for name in ("apidocs.js", "apidocs.css"):
        response = client.get(f"/docs/assets/{name}")

        assert response.status_code == 200, name
        assert response.content == (folder / name).read_bytes(), name


@pytest.mark.parametrize(
    "name",
    [
        "index.html",  # in the package's folder, and it points at the internet
        "swagger-initializer.js",
        "oauth2-redirect.html",
        "swagger-ui-bundle.js.map",
        "..%2F__init__.py",
        "%2E%2E%2F%2E%2E%2Fswagger_ui_bundle%2F__init__.py",
        "SWAGGER-UI.CSS",
    ],
)
def test_no_other_file_is_served_and_the_name_is_not_echoed(client: TestClient, name: str) -> None:
    response = client.get(f"/docs/assets/{name}")

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON
    assert "__init__" not in response.text and "swagger-initializer" not in response.text


def test_path_traversal_with_slashes_reaches_no_file(client: TestClient) -> None:
    for path in ("../../__init__.py", "../swagger-ui-5.31.0/index.html", "/etc/passwd"):
        response = client.get(f"/docs/assets/{path}")
        assert response.status_code == 404, path


def test_no_page_loads_from_a_cdn(client: TestClient) -> None:
    # FastAPI's ReDoc page and OAuth2 redirect page are not offered (bearer tokens only).
    for path in ("/redoc", "/docs/oauth2-redirect"):
        assert client.get(path).status_code == 404, path


def test_the_documentation_needs_no_token(client: TestClient) -> None:
    # create_app's routes carry no Auth rule; the services' routes are checked route by route
    # (tests/integration/test_route_rules.py, whose public allowlist names these paths).
    for path in ("/docs", "/openapi.json", "/docs/assets/swagger-ui.css"):
        assert client.get(path).status_code == 200, path
