"""What an integrator gets from `/contract/...`: the AsyncAPI document and the exact schemas."""

from __future__ import annotations

from urllib.parse import urljoin

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from shared.contracts.generate import ENVELOPE_FILE, LOCK_FILE, SCHEMA_DIR, schema_file
from shared.contracts.registry import ALL_EVENTS, event_type
from shared.platform import asyncapi
from shared.platform.contract_routes import contract_router
from shared.platform.http import PROBLEM_JSON, create_app

BASE = "http://testserver"


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    app.include_router(contract_router())
    return TestClient(app, base_url=BASE)


def test_asyncapi_document_is_the_committed_one_without_a_token(client: TestClient) -> None:
    response = client.get("/contract/asyncapi.json")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == (asyncapi.DOCS_DIR / asyncapi.JSON_FILE).read_bytes()


def test_listing_names_every_type_with_a_link_that_serves_its_schema(client: TestClient) -> None:
    url = f"{BASE}/contract/schemas"
    listing = client.get(url).json()

    assert [t["type"] for t in listing["types"]] == [event_type(m) for m in ALL_EVENTS]
    for entry in [*listing["types"], listing["envelope"]]:
        response = client.get(urljoin(url, entry["href"]))
        assert response.status_code == 200, entry["href"]
    assert client.get(urljoin(url, listing["asyncapi"])).status_code == 200


def test_links_resolve_behind_a_path_prefix(client: TestClient) -> None:
    # Behind the proxy the listing is at /approval/contract/schemas; relative links keep the prefix.
    listing = client.get("/contract/schemas").json()
    href = listing["types"][0]["href"]

    assert urljoin("https://weerbaar.example.nl/approval/contract/schemas", href) == (
        f"https://weerbaar.example.nl/approval/contract/schemas/{schema_file(ALL_EVENTS[0])}"
    )


@pytest.mark.parametrize(
    "name", [schema_file(m) for m in ALL_EVENTS] + [ENVELOPE_FILE], ids=lambda n: n
)
def test_schema_file_is_served_byte_for_byte(client: TestClient, name: str) -> None:
    response = client.get(f"/contract/schemas/{name}")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/schema+json"
    assert response.content == (SCHEMA_DIR / name).read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "Onbekend.v1.json",
        LOCK_FILE,  # in the folder, but not a schema
        "..%2F..%2Fpyproject.toml",
        "%2E%2E%2Fgenerate.py",
        "..",
        "RapportVrijgegeven.v1.json%00",
        "rapportvrijgegeven.v1.json",
    ],
)
def test_anything_else_is_404_without_echoing_the_name(client: TestClient, path: str) -> None:
    response = client.get(f"/contract/schemas/{path}")

    assert response.status_code == 404
    assert "pyproject" not in response.text and "generate" not in response.text
    assert "Onbekend.v1" not in response.text


def test_path_traversal_with_slashes_reaches_no_file(client: TestClient) -> None:
    for path in ("../../pyproject.toml", "../generate.py", "/etc/passwd"):
        response = client.get(f"/contract/schemas/{path}")
        assert response.status_code == 404, path
        assert b"[project]" not in response.content


def test_in_a_service_app_an_unknown_schema_is_a_problem_document() -> None:
    app = create_app(service="intake", title="intake", version="test")
    app.include_router(contract_router())

    response = TestClient(app).get("/contract/schemas/Onbekend.v1.json")

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON
    assert "Onbekend.v1" not in response.text
