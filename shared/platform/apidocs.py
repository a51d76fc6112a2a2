"""Each service's API documentation: Swagger UI at `/docs`, served by the service itself.

FastAPI's own `/docs` page loads Swagger UI's script and style sheet from a CDN, so on a machine
or network without internet it stays blank. Here the page is FastAPI's (`get_swagger_ui_html`),
but its files come from the pinned `swagger-ui-bundle-v2` package (Swagger UI's own `dist`,
Apache-2.0) and are served at `/docs/assets/{name}`: only the three files the page uses, named
in `ASSETS`, and nothing else from the package's folder (its `index.html` would point at the
internet). Like `/docs` and `/openapi.json`, the routes need no token: they are the same for
everyone and say nothing about any dossier.

The page refers to its files and to the OpenAPI document by relative references (RFC 3986), so
it also works behind the path-stripping proxy (`/intake/docs` loads `/intake/openapi.json`).
Two changes to FastAPI's page make it pass axe-core where it is ours: the document's language
(`lang="en"`, Swagger UI's own texts are English) and Swagger UI's container in a `<main>`
landmark. What axe-core still finds is inside Swagger UI's own markup and style sheet
(`tests/browser/test_api_docs.py` lists it).

ReDoc, FastAPI's second documentation page, is not offered: it would need a second bundle, and it
loads its fonts from the internet.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

from fastapi import FastAPI, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from swagger_ui_bundle import swagger_ui_path

__all__ = ["ASSETS", "ASSETS_PATH", "DOCS_PATH", "install_api_docs", "swagger_ui_page"]

DOCS_PATH: Final = "/docs"
ASSETS_PATH: Final = "/docs/assets"
#: The files of Swagger UI's `dist` the page uses, with their media types.
ASSETS: Final = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
_FOLDER: Final = Path(str(swagger_ui_path))
#: The files change only with the pinned package; a browser may keep them for a day.
_CACHE: Final = {"Cache-Control": "public, max-age=86400"}
_NOT_FOUND: Final = "Onbekend bestand / Unknown file"


def _relative(path: str) -> str:
    """``path`` as a reference relative to the page at ``DOCS_PATH`` (both at the root)."""
    return path.removeprefix("/")


def _replace_once(html: str, pattern: str, new: str) -> str:
    replaced, count = re.subn(pattern, new, html)
    if count != 1:
        # FastAPI's page changed shape: fail when the app is built, not in a reader's browser.
        raise RuntimeError(f"FastAPI's Swagger UI page no longer has {pattern!r} once")
    return replaced


def swagger_ui_page(title: str, openapi_url: str) -> str:
    """FastAPI's Swagger UI page with local files, a language and a main landmark."""
    html_bytes = get_swagger_ui_html(
        openapi_url=_relative(openapi_url),
        title=title,
        swagger_js_url=_relative(f"{ASSETS_PATH}/swagger-ui-bundle.js"),
        swagger_css_url=_relative(f"{ASSETS_PATH}/swagger-ui.css"),
        swagger_favicon_url=_relative(f"{ASSETS_PATH}/favicon-32x32.png"),
        # Bearer tokens only (shared.platform.auth): no OAuth2 flow, so no redirect page.
        oauth2_redirect_url=None,
    ).body
    html = bytes(html_bytes).decode("utf-8")
    html = _replace_once(html, r"<html>", '<html lang="en">')
    return _replace_once(html, r'<div id="swagger-ui">\s*</div>', '<main id="swagger-ui"></main>')


def install_api_docs(app: FastAPI) -> None:
    """Serve Swagger UI at `/docs` from local files; `app` must be made with ``docs_url=None``
    and ``redoc_url=None``."""
    assert app.docs_url is None and app.redoc_url is None, "FastAPI's CDN pages are off"
    assert app.openapi_url is not None

    page = swagger_ui_page(f"{app.title} - Swagger UI", app.openapi_url)

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get(f"{ASSETS_PATH}/{{name}}", include_in_schema=False)
    async def swagger_ui_asset(name: str) -> FileResponse:
        media_type = ASSETS.get(name)
        if media_type is None:
            # The name is not echoed: it is caller input.
            raise HTTPException(status_code=404, detail=_NOT_FOUND)
        return FileResponse(_FOLDER / name, media_type=media_type, headers=_CACHE)
