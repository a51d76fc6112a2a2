"""The public event contract over HTTP: the AsyncAPI document and the JSON Schemas.

Every service mounts `contract_router()`; the routes need no token, because the contract is
public. Schema files are served exactly as committed (`shared/contracts/schemas/`), and only the
files that the generator names: a requested name must be one of those before it becomes a path.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Final

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse, Response

from shared.contracts.generate import (
    ENVELOPE_FILE,
    ENVELOPE_SCHEMA_ID,
    SCHEMA_DIR,
    render,
    schema_file,
)
from shared.contracts.registry import ALL_EVENTS, dataschema_for, event_type
from shared.platform.asyncapi import build

SCHEMA_MEDIA_TYPE: Final = "application/schema+json"
_NOT_FOUND: Final = "Onbekend schema / Unknown schema"


@cache
def _asyncapi_bytes() -> bytes:
    return render(build()).encode("utf-8")


@cache
def _schema_names() -> frozenset[str]:
    """The files the generator writes for the registered events, and the envelope's."""
    return frozenset([schema_file(m) for m in ALL_EVENTS] + [ENVELOPE_FILE])


def _listing() -> dict[str, Any]:
    # Links are relative references (RFC 3986), so they also work behind a path-stripping proxy.
    return {
        "asyncapi": "asyncapi.json",
        "envelope": {"id": ENVELOPE_SCHEMA_ID, "href": f"schemas/{ENVELOPE_FILE}"},
        "types": [
            {
                "type": event_type(m),
                "event": m.event_name,
                "version": m.version,
                "service": m.service,
                "dataschema": dataschema_for(m),
                "href": f"schemas/{schema_file(m)}",
            }
            for m in ALL_EVENTS
        ],
    }


def contract_router() -> APIRouter:
    """Routes `/contract/asyncapi.json`, `/contract/schemas` and `/contract/schemas/{file}`."""
    router = APIRouter(prefix="/contract", tags=["contract"])

    @router.get(
        "/asyncapi.json",
        summary="The AsyncAPI 3.0 document of every public event",
        response_class=Response,
        responses={200: {"content": {"application/json": {}}}},
    )
    def asyncapi_document() -> Response:
        return Response(_asyncapi_bytes(), media_type="application/json")

    @router.get(
        "/schemas",
        summary="Every public event type with a link to its JSON Schema",
        description="`href` values are relative to this document's URL.",
    )
    def schema_listing() -> JSONResponse:
        return JSONResponse(_listing())

    @router.get(
        "/schemas/{file}",
        summary="One JSON Schema, exactly as published",
        response_class=Response,
        responses={200: {"content": {SCHEMA_MEDIA_TYPE: {}}}, 404: {"description": _NOT_FOUND}},
    )
    def schema_document(file: str) -> Response:
        if file not in _schema_names():
            # The name is not echoed: it is caller input.
            raise HTTPException(status_code=404, detail=_NOT_FOUND)
        return Response((SCHEMA_DIR / file).read_bytes(), media_type=SCHEMA_MEDIA_TYPE)

    return router
