"""``python -m bench.profile`` reads py-spy's raw samples into shares by library and by use case."""

from __future__ import annotations

from pathlib import Path

from bench.profile import library, read_raw, summarise, use_case

LOOP = (
    "_run_module_as_main (<frozen runpy>:198);<module> (services/intake/__main__.py:17);"
    "main (shared/platform/runtime.py:228);run (asyncio/runners.py:190);"
    "BaseEventLoop._run_once (asyncio/base_events.py:1922);Handle._run (asyncio/events.py:80)"
)
WORKER = (
    "Thread._bootstrap (threading.py:1002);_worker (concurrent/futures/thread.py:83);"
    "_WorkItem.run (concurrent/futures/thread.py:58)"
)
RAW = f"""\
{WORKER};DossierProjection.handle_batch (services/intake/projections/dossier.py:657);fold (services/intake/projections/dossier.py:271);BaseModel.__init__ (pydantic/main.py:280) 6
{WORKER};DossierProjection.handle_batch (services/intake/projections/dossier.py:657);Cursor.fetchall (psycopg/cursor.py:282) 2
{LOOP};RequestResponseCycle.run_asgi (uvicorn/protocols/http/httptools_impl.py:422);_RequestContext.__call__ (shared/platform/http.py:414);Router.__call__ (starlette/routing.py:715) 1
{LOOP};DurableConsumer.run (shared/platform/consumer.py:203);Msg.ack (nats/aio/msg.py:100) 1
{LOOP};RequestResponseCycle.run_asgi (uvicorn/protocols/http/httptools_impl.py:422) 1
_run_module_as_main (<frozen runpy>:198);main (shared/platform/runtime.py:228);EpollSelector.select (selectors.py:468) 1
"""  # noqa: E501 - py-spy's lines as they are


def test_samples_are_shared_out_by_library_and_by_use_case(tmp_path: Path) -> None:
    raw = tmp_path / "intake.txt"
    raw.write_text(RAW)
    summary = summarise(read_raw(raw))
    assert summary["samples"] == 12
    assert dict(summary["by_library"]) == {
        "pydantic": 50.0,
        "psycopg": 16.7,
        "HTTP server (h11, uvicorn, starlette, FastAPI)": 16.7,
        "nats-py": 8.3,
        "asyncio, threads, selectors": 8.3,
    }
    assert dict(summary["by_use_case"]) == {
        "services/intake/projections/dossier.py: DossierProjection.handle_batch": 66.7,
        "shared/platform/http.py: _RequestContext.__call__": 8.3,
        "shared/platform/consumer.py: DurableConsumer.run": 8.3,
        "event loop: HTTP server (h11, uvicorn, starlette, FastAPI): "
        "RequestResponseCycle.run_asgi": 8.3,
        "event loop: waiting in select": 8.3,
    }


def test_a_frame_of_the_standard_library_is_not_taken_for_a_package_of_the_same_name() -> None:
    assert library("loads (json/__init__.py:346)") == "json"
    assert library("Thread.run (threading.py:982)") == "asyncio, threads, selectors"
    assert library("get (services/x/queue.py:1)") == "Weerbaar: services/"
    assert use_case(["<module> (services/intake/__main__.py:17)"]) == (
        "runtime (event loop, worker threads, start-up)"
    )
