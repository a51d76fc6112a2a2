"""Each service's API documentation: Swagger UI at `/docs`, served by the service itself.

FastAPI's own `/docs` page loads Swagger UI's script and style sheet from a CDN, so on a machine
or network without internet it stays blank. Here the page is our own (`swagger_ui_page`) and every
file it loads is served by the service at `/docs/assets/{name}`, named in `ASSETS` and nothing
else: three from the pinned `swagger-ui-bundle-v2` package (Swagger UI's own `dist`, Apache-2.0;
its `index.html` would point at the internet) and two of ours, next to this module in
`apidocs_files/`. Like `/docs` and `/openapi.json`, the routes need no token: they are the same for
everyone and say nothing about any dossier.

The page refers to its files and to the OpenAPI document by relative references (RFC 3986), so
it also works behind the path-stripping proxy (`/intake/docs` loads `/intake/openapi.json`). It has
no inline script or style: `apidocs.js` starts Swagger UI with FastAPI's settings and a small
plugin, and `apidocs.css` comes after Swagger UI's style sheet. Together they make the page pass
axe-core (WCAG 2.2 AA) with no violation, as it loads and in use (`tests/browser/test_api_docs.py`):
a language (`lang="en"`, Swagger UI's own texts are English), Swagger UI's container in a `<main>`
landmark, text colours with enough contrast (code in a theme that has it), each operation's path
as text rather than a link inside the button that opens it, no heading level skipped, a name for
every button and field, and scrolling code blocks the keyboard reaches.

ReDoc, FastAPI's second documentation page, is not offered: it would need a second bundle, and it
loads its fonts from the internet.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Final, NamedTuple

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse
from swagger_ui_bundle import swagger_ui_path

__all__ = ["ASSETS", "ASSETS_PATH", "DOCS_PATH", "install_api_docs", "swagger_ui_page"]

DOCS_PATH: Final = "/docs"
ASSETS_PATH: Final = "/docs/assets"


class Asset(NamedTuple):
    """A file the page loads: the folder it is in and its media type."""

    folder: Path
    media_type: str


_SWAGGER_UI: Final = Path(str(swagger_ui_path))
_OURS: Final = Path(__file__).with_name("apidocs_files")
#: The files the page uses: Swagger UI's (from its `dist`) and ours, with their media types.
ASSETS: Final = {
    "swagger-ui-bundle.js": Asset(_SWAGGER_UI, "text/javascript; charset=utf-8"),
    "swagger-ui.css": Asset(_SWAGGER_UI, "text/css; charset=utf-8"),
    "favicon-32x32.png": Asset(_SWAGGER_UI, "image/png"),
    "apidocs.js": Asset(_OURS, "text/javascript; charset=utf-8"),
    "apidocs.css": Asset(_OURS, "text/css; charset=utf-8"),
}
#: The files change only with a release; a browser may keep them for a day.
_CACHE: Final = {"Cache-Control": "public, max-age=86400"}
_NOT_FOUND: Final = "Onbekend bestand / Unknown file"

_PAGE: Final = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{title}</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="stylesheet" href="{assets}/apidocs.css">
<link rel="icon" href="{assets}/favicon-32x32.png">
</head>
<body>
<main id="swagger-ui" data-openapi-url="{openapi_url}"></main>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{assets}/apidocs.js"></script>
</body>
</html>
"""


def _relative(path: str) -> str:
    """``path`` as a reference relative to the page at ``DOCS_PATH`` (both at the root)."""
    return path.removeprefix("/")


def swagger_ui_page(title: str, openapi_url: str) -> str:
    """The `/docs` page: Swagger UI from local files, started by ``apidocs.js``."""
    return _PAGE.format(
        title=escape(title),
        assets=escape(_relative(ASSETS_PATH)),
        openapi_url=escape(_relative(openapi_url)),
    )


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
        asset = ASSETS.get(name)
        if asset is None:
            # The name is not echoed: it is caller input.
            raise HTTPException(status_code=404, detail=_NOT_FOUND)
        return FileResponse(asset.folder / name, media_type=asset.media_type, headers=_CACHE)
