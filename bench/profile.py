"""``python -m bench.profile``: where the CPU of a dossier goes, per service, by library and by
use case.

Starts its own embedded PostgreSQL and NATS and the five services (as ``weerbaar bench`` does),
takes ``--dossiers`` dossiers through the whole process (the benchmark's lifecycle driver, 12 at a
time) while ``py-spy record`` samples every service process (100 samples/s, non-blocking, only
the thread holding the GIL: where the process's Python work goes), waits until everything the
dossiers caused is handled, then reads the samples:

- *by library*: the file of the innermost frame of each sample (psycopg, pydantic, the HTTP
  server, asyncio and threads, ...): what the CPU is spent *in*;
- *by use case*: the outermost frame in ``services/`` (a route, a policy, a projection), else in
  ``shared/`` (the relay, the consumer loop, the senders): what the CPU is spent *for*;
- the CPU seconds per dossier of every process, PostgreSQL and NATS included (``/proc``).

Samples are wall-clock samples of busy threads, so a share is a share of one process's busy time;
the seconds per dossier (``/proc``) say how the processes weigh against each other. py-spy's own
sampling costs a little CPU on the same two cores. Writes ``bench/results/profile.json``
(``--out``) and prints the tables.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import product
from bench.system import bench_system
from shared.platform.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]

#: Where a sample's innermost frame is, by the start of its file's path; the first match names it.
LIBRARIES: tuple[tuple[str, str], ...] = (
    ("/psycopg_pool/", "psycopg"),
    ("/psycopg/", "psycopg"),
    ("/pydantic", "pydantic"),
    ("/eventsourcing/", "eventsourcing"),
    ("/nats/", "nats-py"),
    ("/faststream/", "faststream"),
    ("/h11/", "HTTP server (h11, uvicorn, starlette, FastAPI)"),
    ("/httptools/", "HTTP server (h11, uvicorn, starlette, FastAPI)"),
    ("/uvicorn/", "HTTP server (h11, uvicorn, starlette, FastAPI)"),
    ("/starlette/", "HTTP server (h11, uvicorn, starlette, FastAPI)"),
    ("/fastapi/", "HTTP server (h11, uvicorn, starlette, FastAPI)"),
    ("/httpx/", "HTTP client (httpx, httpcore)"),
    ("/httpcore/", "HTTP client (httpx, httpcore)"),
    ("/anyio/", "asyncio, threads, selectors"),
    ("/asyncio/", "asyncio, threads, selectors"),
    ("/concurrent/", "asyncio, threads, selectors"),
    ("/threading.py", "asyncio, threads, selectors"),
    ("/selectors.py", "asyncio, threads, selectors"),
    ("/queue.py", "asyncio, threads, selectors"),
    ("/email/", "e-mail (email, smtplib)"),
    ("/smtplib.py", "e-mail (email, smtplib)"),
    ("/json/", "json"),
    ("/cryptography/", "cryptography"),
    ("/opentelemetry/", "telemetry (opentelemetry, prometheus)"),
    ("/prometheus_client/", "telemetry (opentelemetry, prometheus)"),
    ("/logging/", "logging"),
    ("/jwt/", "tokens (PyJWT)"),
    ("/authlib/", "tokens (authlib)"),
    ("/services/", "Weerbaar: services/"),
    ("/shared/", "Weerbaar: shared/"),
)


def _path(frame: str) -> str:
    """A frame's file as py-spy names it (relative to its ``sys.path`` entry), with a leading
    slash: ``/psycopg/cursor.py``, ``/services/intake/api.py``, ``/threading.py``."""
    return "/" + frame.rpartition(" (")[2].rpartition(":")[0]


def library(frame: str) -> str:
    """The library a frame (``function (path:line)``) is in."""
    path = _path(frame)
    for piece, name in LIBRARIES:
        # py-spy names a file from its top-level package (or module) on: a prefix, never a
        # piece anywhere (``services/x/queue.py`` is ours, not the standard library's).
        if path.startswith(piece):
            return name
    return "other (standard library, ...)"


#: Frames that only start the process: a sample is not spent *for* them.
_ENTRY = ("/__main__.py", "/shared/platform/runtime.py")


def use_case(stack: list[str]) -> str:
    """What a sample (outermost frame first) is spent for: its outermost frame of ours past the
    process's start (``__main__``, ``runtime``); else, on the event loop, the task it runs."""
    for prefix in ("/services/", "/shared/"):
        for frame in stack:
            path = _path(frame)
            if path.startswith(prefix) and not path.endswith(_ENTRY):
                return f"{path[1:]}: {frame.partition(' (')[0]}"
    for index, frame in enumerate(stack[:-1]):
        if frame.startswith("Handle._run (asyncio/events.py"):
            task = stack[index + 1]
            return f"event loop: {library(task)}: {task.partition(' (')[0]}"
    if any(_path(frame) == "/selectors.py" for frame in stack):
        return "event loop: waiting in select"
    return "runtime (event loop, worker threads, start-up)"


def read_raw(path: Path) -> list[tuple[list[str], int]]:
    """py-spy's raw format: one line per stack, ``frame;frame;... count``, outermost first."""
    stacks = []
    for line in path.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            # The first element is the thread ("process 123:..." / "thread (0x...)"); keep frames.
            stacks.append(([f for f in frames.split(";") if " (" in f], int(count)))
    return stacks


def summarise(stacks: list[tuple[list[str], int]], top: int = 12) -> dict[str, Any]:
    """Shares of one process's samples by library and by use case."""
    total = sum(count for _, count in stacks) or 1
    by_library: Counter[str] = Counter()
    by_use: Counter[str] = Counter()
    for frames, count in stacks:
        if not frames:
            continue
        by_library[library(frames[-1])] += count
        by_use[use_case(frames)] += count

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(k, round(100 * v / total, 1)) for k, v in counter.most_common(top)]

    return {"samples": total, "by_library": shares(by_library), "by_use_case": shares(by_use)}


def run(dossiers: int, out: Path, raw: Path | None = None) -> dict[str, Any]:
    """Start everything, profile the dossiers, stop everything; the results."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    workdir = Path(tempfile.mkdtemp(prefix="weerbaar-profile-"))
    system = bench_system(workdir)
    results: dict[str, Any] = {}
    try:
        system.start_servers()
        assert system.database_url and system.nats_url and system.postgres
        system.start_services(timeout=120)
        stream = load_settings(
            database_url=system.database_url, nats_url=system.nats_url, data_dir=system.data_dir
        ).stream_name
        pids = {p.service: p.process.pid for p in system.processes}
        servers = {"postgresql": system.postgres.pid}
        if system.nats:
            servers["nats"] = system.nats.pid
        cpu = product.CpuMeter(pids, servers)
        urls = {p.service: system.url(p.service) for p in system.processes}
        # One dossier first, unprofiled: the services' first requests warm their caches.
        product.lifecycle(urls, system.data_dir, 1, 1)
        asyncio.run(product.wait_quiet(system.nats_url, stream))
        recorders = {
            service: subprocess.Popen(  # noqa: S603 - the environment's py-spy, our pids
                [
                    spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "100",
                    "--nonblocking", "--gil", "--output", str(workdir / f"{service}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for service, pid in pids.items()
        }  # fmt: skip
        time.sleep(1)  # py-spy attaches before the first dossier starts
        before = cpu.read()
        results["lifecycle"] = product.lifecycle(urls, system.data_dir, dossiers, 12)
        asyncio.run(product.wait_quiet(system.nats_url, stream))
        results["cpu_per_dossier"] = product.cpu_per(
            before, cpu.read(), results["lifecycle"]["completed"]
        )
        for recorder in recorders.values():
            recorder.send_signal(signal.SIGINT)
        for service, recorder in recorders.items():
            recorder.wait(timeout=60)
            results.setdefault("services", {})[service] = summarise(
                read_raw(workdir / f"{service}.txt")
            )
            if raw is not None:
                raw.mkdir(parents=True, exist_ok=True)
                shutil.copy(workdir / f"{service}.txt", raw / f"{service}.txt")
    finally:
        system.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    document = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "dossiers": dossiers,
        "results": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    return document


def report(document: dict[str, Any]) -> str:
    """The tables, as text."""
    r = document["results"]
    cpu = r["cpu_per_dossier"]
    lines = [
        f"{r['lifecycle']['completed']} dossiers, {r['lifecycle']['per_s']}/s;"
        f" CPU per dossier {cpu['total_s']:.3f} s: "
        + ", ".join(f"{k} {v:.3f}" for k, v in cpu["per_process_s"].items()),
    ]
    for service, summary in r.get("services", {}).items():
        seconds = cpu["per_process_s"].get(service, 0.0)
        lines.append(f"\n## {service}: {seconds:.3f} s per dossier, {summary['samples']} samples")
        lines.append("by library (innermost frame):")
        lines += [f"  {share:5.1f} %  {name}" for name, share in summary["by_library"]]
        lines.append("by use case (outermost frame of ours):")
        lines += [f"  {share:5.1f} %  {name}" for name, share in summary["by_use_case"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Profile ``--dossiers`` dossiers; print the tables and write the JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--dossiers", type=int, default=60)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "profile.json")
    parser.add_argument("--raw", type=Path, help="keep py-spy's samples here (one file each)")
    args = parser.parse_args(argv)
    document = run(args.dossiers, args.out, args.raw)
    print(report(document))
    print(f"\nwritten to {args.out}")
    return 0 if document["results"]["lifecycle"]["failed"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
