"""Timings of a refusal for someone else's dossier or report beside one for an unknown id.

``python -m bench.refusal_paths [--requests N]`` starts the whole system (embedded PostgreSQL and
NATS, every service as its own process), takes one dossier to an approved report, and asks, as a
bestuurder of another dossier, N times for that dossier or report and N times for an id nobody
has, alternating. Both must take the same path (the same question to intake, the same refusal on
record; ``tests/integration/test_edge_limits.py`` checks what each path does); this prints their
timings side by side, so a difference an attacker could measure shows. Results go to
``bench/results/refusal_paths.json``.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from shared.platform.auth import load_or_create_secret
from shared.platform.settings import SERVICES
from tools.demo import Actors, DossierDriver
from tools.embedded import free_port
from tools.system import System

RESULTS = Path(__file__).resolve().parent / "results" / "refusal_paths.json"


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1] * 1000, 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
    }


def measure(requests: int) -> dict[str, Any]:
    """Run the system, measure, stop it; the timings per route and path."""
    workdir = Path(tempfile.mkdtemp(prefix="weerbaar-refusals-"))
    system = System(data_dir=workdir / "data", preferred_ports={s: free_port() for s in SERVICES})
    try:
        system.start_servers()
        system.start_services(timeout=120)
        urls = {s: f"http://127.0.0.1:{system.ports[s]}" for s in SERVICES}
        secret = load_or_create_secret(system.data_dir / "secrets" / "jwt.key")
        owner = Actors(secret, f"eigen.{secrets.token_hex(3)}@example.org", "GM0344")
        stranger = Actors(secret, f"ander.{secrets.token_hex(3)}@example.org", "GM0344")
        with httpx.Client(timeout=30) as client:
            driver = DossierDriver(urls, owner, client)
            driver.tot_goedgekeurd()
            routes: list[tuple[str, str, str]] = [
                ("intake", "/aanvragen/{}", driver.aanvraag_id),
                ("assessment", "/rapporten/{}", driver.rapport_id),
                ("approval", "/rapporten/{}/status", driver.rapport_id),
            ]
            headers = stranger.headers("bestuurder", sub="bst-ander")
            results: dict[str, Any] = {}
            for service, template, known in routes:
                timings: dict[str, list[float]] = {"iemand_anders": [], "onbekend": []}
                statuses: set[int] = set()
                for _ in range(requests):
                    for kind, ident in (("iemand_anders", known), ("onbekend", str(uuid.uuid4()))):
                        url = urls[service] + template.format(ident)
                        started = time.perf_counter()
                        response = client.get(url, headers=headers)
                        timings[kind].append(time.perf_counter() - started)
                        statuses.add(response.status_code)
                results[f"{service} GET {template.format('{id}')}"] = {
                    "statuses": sorted(statuses),
                    **{kind: _ms(samples) for kind, samples in timings.items()},
                }
    finally:
        system.stop()
    return {"requests_per_path": requests, "routes": results}


def table(results: dict[str, Any], out: Callable[[str], None] = print) -> None:
    """Print the timings side by side."""
    out("| route | answers | someone else's p50 / p95 ms | unknown p50 / p95 ms |")
    out("|---|---|---|---|")
    for route, row in results["routes"].items():
        other, unknown = row["iemand_anders"], row["onbekend"]
        out(
            f"| {route} | {row['statuses']} | {other['p50_ms']} / {other['p95_ms']}"
            f" | {unknown['p50_ms']} / {unknown['p95_ms']} |"
        )


def main() -> None:
    """``python -m bench.refusal_paths``."""
    parser = argparse.ArgumentParser(prog="python -m bench.refusal_paths")
    parser.add_argument("--requests", type=int, default=200, help="requests per route and path")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = measure(args.requests)
    table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
