"""``weerbaar bench``: the product's speed against the raw limits of the same servers, same run.

``python -m bench.system [--quick] [--out FILE]`` starts its own embedded PostgreSQL and NATS and
the five services (``tools.system.System``) in a temporary directory, then measures in order:

1. intake's outbox relay publishing a seeded log (written through intake's application) onto the
   stream, between two runs of nats-py ``publish_async`` with ``Nats-Msg-Id`` of the same payload
   size on the same stream (the better one is the limit); the stream is purged afterwards;
2. with the services running, in three rounds each on a system at rest: the event store's own
   append SQL (``LOCK TABLE … IN EXCLUSIVE MODE``, ``NOTIFY``, ``INSERT``, ``COMMIT``, pipelined
   as the library sends it) and plain single-row commits on 1 (then 8) connections, then
   ``POST /aanvragen`` from 1 (then 8) clients; the medians are reported, with the CPU each
   registration cost in every process (``/proc``) until all it caused was handled;
3. commit → visible at a fixed 20 commands/s (the goal), then 50/s (reported); whole dossiers
   through every step of the process (``DossierDriver``), with the RSS of every service process
   idle and under that load and the CPU per dossier of every service process, PostgreSQL and
   NATS;
4. ``weerbaar replay --no-switch`` (the product's ``Rebuild``: every service's log decoded by its
   service, the public events stored, the dossiers folded) into a fresh schema, against reading and
   JSON-decoding the same stored rows; its fold step apart, against reading and decoding the
   public events it folds;
5. ``GET /aanvragen`` with filters after filling the projection up to 100,000 dossiers (copies of
   real views written with COPY straight into the projection's table).

It prints one table (product, raw limit, ratio, goal) and writes everything as JSON. ``--quick``
runs the same steps with tiny counts in seconds (for CI: it proves the command works; its figures
mean little). Machines are shared and noisy: read the ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg.sql import SQL

from bench import product, raw
from bench.product import unthrottled
from shared.platform.auth import issue_token, load_or_create_secret
from shared.platform.settings import SERVICES, load_settings
from tools.embedded import free_port
from tools.system import PORTAL, System


@dataclass(frozen=True)
class Sizes:
    """How much each step does."""

    seconds: float  # per rate measurement
    relay_events: int
    visible_commands: int
    lifecycle_dossiers: int
    lifecycle_concurrency: int
    list_dossiers: int
    list_requests: int
    portal_requests: int  # per page
    rounds: int  # raw limit and product measured in turns, so both see the same machine


FULL = Sizes(4.0, 20_000, 500, 60, 12, 100_000, 300, 100, 3)
QUICK = Sizes(0.5, 200, 10, 1, 1, 500, 12, 3, 1)


@dataclass
class Line:
    """One line of the table."""

    key: str
    measure: str
    product: str
    raw: str
    ratio: float | None
    goal: str
    met: bool | None

    def cells(self) -> list[str]:
        ratio = "—" if self.ratio is None else f"{self.ratio:.2f}"
        met = "—" if self.met is None else ("yes" if self.met else "NO")
        return [self.measure, self.product, self.raw, ratio, self.goal, met]


def _database(system: System, name: str) -> str:
    assert system.postgres is not None
    return system.postgres.ensure_database(name)


def _print_table(lines: list[Line]) -> str:
    header = ["measure", "product", "raw limit (same run)", "ratio", "goal", "met"]
    rows = [header, *[line.cells() for line in lines]]
    text = "| " + " | ".join(header) + " |\n|" + "|".join("---" for _ in header) + "|\n"
    text += "".join("| " + " | ".join(r) + " |\n" for r in rows[1:])
    return text


def bench_system(workdir: Path) -> System:
    """The system a measurement starts in ``workdir``: free ports, never the defaults (a running
    `weerbaar up` keeps its own), and no registration limit (every registration of the rates
    comes from one address)."""
    return System(
        data_dir=workdir / "data",
        preferred_ports={s: free_port() for s in SERVICES},
        extra_env=unthrottled(),
    )


def run(sizes: Sizes, out: Path, quick: bool) -> dict[str, Any]:  # noqa: PLR0915 - one sequence
    """Start everything, measure in order, stop everything; the results."""
    workdir = Path(tempfile.mkdtemp(prefix="weerbaar-bench-"))
    system = bench_system(workdir)
    results: dict[str, Any] = {}

    def step(title: str) -> None:
        print(f"[{time.perf_counter() - began:6.1f}s] {title}", flush=True)

    began = time.perf_counter()
    try:
        step("starting embedded PostgreSQL and NATS")
        system.start_servers()
        assert system.database_url and system.nats_url and system.postgres
        with psycopg.connect(system.database_url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        results["postgres"] = row[0] if row else None
        results["cpus"] = os.cpu_count()

        relay_settings = load_settings(
            database_url=_database(system, "bench_relay"),
            nats_url=system.nats_url,
            data_dir=system.data_dir,
        )
        step(f"seeding intake's log with {sizes.relay_events:,} registrations")
        seeded = product.seed_intake_log(relay_settings, sizes.relay_events)
        results["relay_seed"] = seeded
        payload = product.cloudevent_bytes(relay_settings)

        async def raw_publish() -> float:
            assert system.nats_url
            return await raw.publish_rate(
                system.nats_url,
                relay_settings.stream_name,
                seeded["public_events"],
                payload,
                window=relay_settings.relay_batch_size,
            )

        raw_url = _database(system, "bench_raw")
        raw.prepare(raw_url)

        step(f"raw publish_async, intake's relay onto the stream, raw again ({payload} bytes)")
        publish = [asyncio.run(raw_publish())]
        relay = asyncio.run(product.relay_rate(relay_settings, seeded["public_events"]))
        results["relay"] = relay
        publish.append(asyncio.run(raw_publish()))
        # The limit is the better of the two (one just before, one just after the relay).
        results["raw_publish_runs"] = publish
        results["raw_publish"] = max(publish)
        asyncio.run(product.purge_stream(relay_settings))

        step("starting the five services")
        system.start_services(timeout=120)
        pids = {p.service: p.process.pid for p in system.processes}
        time.sleep(2)  # let start-up work settle before the idle figure
        servers = {
            "postgresql": system.postgres.pid,
            "nats": system.nats.pid if system.nats else None,
        }
        cpu = product.CpuMeter(pids, {k: v for k, v in servers.items() if v is not None})
        idle = product.MemorySampler(pids)
        idle.sample()
        results["rss_idle_mb"] = {k: round(v, 1) for k, v in idle.peak.items()}

        intake = system.url("intake")
        state = seeded["state_bytes"]
        for clients in (1, 8):
            step(
                f"{sizes.rounds} rounds: append SQL and plain commits on {clients} connection(s)"
                f" ({state}-byte events), then POST /aanvragen from {clients} client(s)"
            )
            rounds: list[dict[str, Any]] = []
            results[f"rounds_{clients}"] = rounds
            for _ in range(sizes.rounds):
                # Each round on a system at rest: the previous round's commands cause work in
                # every service, which would slow down the next raw measurement.
                asyncio.run(product.wait_quiet(system.nats_url, relay_settings.stream_name))
                append = raw.append_rate(raw_url, clients, sizes.seconds, state)
                plain = raw.plain_insert_rate(raw_url, clients, sizes.seconds, state)
                used = cpu.read()
                with product.LockWaits(system.database_url) as waits:
                    commands = asyncio.run(product.command_rate(intake, clients, sizes.seconds))
                # What the registrations cost in every process, until they were all handled.
                asyncio.run(product.wait_quiet(system.nats_url, relay_settings.stream_name))
                cost = product.cpu_per(used, cpu.read(), commands.done)
                rounds.append(
                    {
                        "append": append,
                        "plain": plain,
                        "commands": asdict(commands),
                        "cpu": cost,
                        "lock_waits": waits.summary(),
                    }
                )
            median_round = sorted(rounds, key=lambda r: r["commands"]["per_s"])[len(rounds) // 2]
            results[f"raw_append_{clients}"] = _median([r["append"] for r in rounds])
            results[f"raw_plain_{clients}"] = _median([r["plain"] for r in rounds])
            results[f"commands_{clients}"] = {
                "per_s": _median([r["commands"]["per_s"] for r in rounds]),
                "done": sum(r["commands"]["done"] for r in rounds),
                "failed": sum(r["commands"]["failed"] for r in rounds),
                "ratio_per_round": [
                    r["commands"]["per_s"] / r["append"] if r["append"] else None for r in rounds
                ],
                # CPU per registration and lock waits, of the round with the median rate.
                "cpu": median_round["cpu"],
                "lock_waits": median_round["lock_waits"],
            }

        step("waiting until the services have handled what the commands caused")
        results["catch_up_after_commands_s"] = round(
            asyncio.run(product.wait_quiet(system.nats_url, relay_settings.stream_name)), 2
        )
        # At 20/s (a load two cores carry: the goal) and at 50/s (beyond it: reported), each
        # for the same number of seconds.
        for key, rate in (("visible_20", 20), ("visible", 50)):
            count = max(1, sizes.visible_commands * rate // 50)
            step(f"commit → visible, {count} registrations at {rate}/s")
            results[key] = asyncio.run(
                product.commit_to_visible(
                    intake,
                    system.database_url,
                    system.nats_url,
                    relay_settings.stream_name,
                    rate,
                    count,
                )
            )
            asyncio.run(product.wait_quiet(system.nats_url, relay_settings.stream_name))
        step(f"{sizes.lifecycle_dossiers} dossiers through the whole process")
        urls = {p.service: system.url(p.service) for p in system.processes}
        before = cpu.read()
        with product.MemorySampler(pids) as load:
            results["lifecycle"] = product.lifecycle(
                urls, system.data_dir, sizes.lifecycle_dossiers, sizes.lifecycle_concurrency
            )
        results["rss_load_mb"] = {k: round(v, 1) for k, v in load.peak.items()}

        # Up to rest: the mails and webhooks a closed dossier still causes count as its work.
        asyncio.run(product.wait_quiet(system.nats_url, relay_settings.stream_name))
        results["cpu_per_dossier"] = product.cpu_per(
            before, cpu.read(), results["lifecycle"]["completed"]
        )
        step("weerbaar replay --no-switch (every service's log into a fresh schema)")
        services_settings = load_settings(
            database_url=system.database_url, nats_url=system.nats_url, data_dir=system.data_dir
        )
        results["rebuild"] = product.replay_projection(
            services_settings, system.env(), "bench_replay"
        )
        rows, per_s = raw.read_decode_rate(
            system.database_url, product.stored_events_query(services_settings)
        )
        results["raw_read_decode"] = {"rows": rows, "per_s": per_s}
        # The fold step against reading and decoding the rows it reads (the public events the
        # projection keeps, the live one holding the same).
        rows, per_s = raw.read_decode_rate(
            system.database_url, SQL("SELECT envelope::text FROM intake.dossier_events")
        )
        results["raw_read_decode_public"] = {"rows": rows, "per_s": per_s}

        step(f"filling the dossier projection up to {sizes.list_dossiers:,} dossiers")
        results["list_seed"] = product.seed_dossiers(system.database_url, sizes.list_dossiers)
        secret = load_or_create_secret(system.data_dir / "secrets" / "jwt.key")
        token = issue_token(
            secret,
            role="secretariaat",
            sub="bench",
            issuer="weerbaar-embedded",
            audience="weerbaar",
        )
        step(f"GET /aanvragen with filters, {sizes.list_requests} requests")
        results["list"] = product.list_latency(
            intake, {"Authorization": f"Bearer {token}"}, sizes.list_requests
        )
        results["list_explain"] = product.explain_list(system.database_url)

        step(
            f"the portal's pages at {sizes.list_dossiers:,} dossiers, {sizes.portal_requests} each"
        )
        with httpx.Client(timeout=30) as client:
            # The demo bestuurder's and werkgever's own dossier: their pages show it.
            dossier, rapport = product.drive_one(
                urls,
                secret,
                client,
                email=product.DEMO_BESTUURDER,
                organisatie=product.DEMO_ORGANISATIE,
            )
        system.start_portal(timeout=60, port=free_port())
        results["portal"] = product.portal_page_times(
            system.url(PORTAL), dossier, rapport, sizes.portal_requests
        )
        step("done measuring; stopping")
    finally:
        system.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    lines = table(results)
    text = _print_table(lines)
    print()
    print(text)
    document = {
        "benchmark": "weerbaar bench",
        "quick": quick,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["weerbaar bench", *sys.argv[1:]]),
        "sizes": asdict(sizes),
        "table": [asdict(line) for line in lines],
        "table_markdown": text,
        "results": results,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(f"written to {out}")
    return document


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def _ratio(product_value: float, raw_value: float) -> float | None:
    return round(product_value / raw_value, 3) if raw_value else None


def _cpu_cells(cpu: dict[str, Any]) -> str:
    parts = ", ".join(f"{k} {v:.3f}" for k, v in cpu["per_process_s"].items())
    return f"{cpu['total_s']:.3f} s ({parts})"


def table(r: dict[str, Any]) -> list[Line]:
    """The table's lines from the results."""
    c1, c8 = r["commands_1"]["per_s"], r["commands_8"]["per_s"]
    a1, a8 = r["raw_append_1"], r["raw_append_8"]
    p1, p8 = r["raw_plain_1"], r["raw_plain_8"]
    relay, publish = r["relay"]["per_s"], r["raw_publish"]
    rebuild, decode = r["rebuild"]["per_s"], r["raw_read_decode"]["per_s"]
    fold, decode_public = r["rebuild"]["fold_per_s"], r["raw_read_decode_public"]["per_s"]
    visible, visible_20 = r["visible"], r.get("visible_20")
    life = r["lifecycle"]
    listing = r["list"]
    idle, load = r["rss_idle_mb"], r["rss_load_mb"]
    portal = r["portal"]
    r1, r8 = _ratio(c1, a1), _ratio(c8, a8)
    rr, rb = _ratio(relay, publish), _ratio(rebuild, decode)
    idle_max = max(idle.values()) if idle else 0.0
    p99 = visible["p99_ms"]
    cpu = r["cpu_per_dossier"]
    cores = r.get("cpus") or os.cpu_count() or 1
    return [
        Line(
            "commands_1",
            "command commit rate, 1 client (POST /aanvragen 201/s)",
            f"{c1:,.0f}/s",
            f"{a1:,.0f}/s append SQL, 1 conn",
            r1,
            "≥ 100/s",
            c1 >= 100,
        ),
        Line(
            "commands_8",
            "command commit rate, 8 clients",
            f"{c8:,.0f}/s",
            f"{a8:,.0f}/s append SQL, 8 conns",
            r8,
            "≥ 200/s",
            c8 >= 200,
        ),
        Line(
            "plain_1",
            "plain commits, 1 conn (ratio: append SQL / plain)",
            "—",
            f"{p1:,.0f}/s",
            _ratio(a1, p1),
            "reported",
            None,
        ),
        Line(
            "plain_8",
            "plain commits, 8 conns (ratio: append SQL / plain)",
            "—",
            f"{p8:,.0f}/s",
            _ratio(a8, p8),
            "reported",
            None,
        ),
        Line(
            "relay",
            "relay, events/s onto the stream, acked",
            f"{relay:,.0f}/s",
            f"{publish:,.0f}/s publish_async",
            rr,
            "≥ 0.5",
            rr is not None and rr >= 0.5,
        ),
        Line(
            "rebuild",
            "projection rebuild (weerbaar replay from every log), stored events/s",
            f"{rebuild:,.0f}/s",
            f"{decode:,.0f}/s read + JSON decode",
            rb,
            "≥ 0.25",
            rb is not None and rb >= 0.25,
        ),
        Line(
            "rebuild_fold",
            "… its fold step (public events → dossiers), events/s",
            f"{fold:,.0f}/s",
            f"{decode_public:,.0f}/s read + JSON decode",
            _ratio(fold, decode_public),
            "reported",
            None,
        ),
        *(
            [
                Line(
                    "visible_20",
                    "commit → visible at 20 commands/s",
                    f"p50 {visible_20['p50_ms']} ms, p99 {visible_20['p99_ms']} ms",
                    "—",
                    None,
                    "p99 ≤ 100 ms",
                    visible_20["p99_ms"] is not None
                    and visible_20["p99_ms"] <= 100
                    and visible_20["never_visible_within_60s"] == 0,
                )
            ]
            if visible_20 is not None
            else []
        ),
        Line(
            "visible",
            "commit → visible at 50 commands/s",
            f"p50 {visible['p50_ms']} ms, p99 {p99} ms",
            "—",
            None,
            "reported",
            None,
        ),
        Line(
            "lifecycle",
            "full lifecycle, dossiers/s (all services)",
            f"{life['per_s']:.2f}/s ({life['completed']}/{life['dossiers']} done)",
            "—",
            None,
            "≥ 7",
            life["per_s"] >= 7 and life["failed"] == 0,
        ),
        Line(
            "cpu_registration",
            "CPU s per registration, 1 client, until handled everywhere (all processes)",
            _cpu_cells(r["commands_1"]["cpu"]),
            f"{cores} cores",
            None,
            "≤ 0.025 s",
            r["commands_1"]["cpu"]["total_s"] <= 0.025,
        ),
        Line(
            "cpu",
            "CPU s per dossier through the whole process (all processes)",
            _cpu_cells(cpu),
            f"{cores} cores",
            None,
            "≤ 0.25 s",
            cpu["total_s"] <= 0.25,
        ),
        Line(
            "list",
            f"dossier list p99, GET /aanvragen at {r['list_seed']['total']:,} dossiers",
            f"p50 {listing['p50_ms']} ms, p99 {listing['p99_ms']} ms",
            "—",
            None,
            "≤ 50 ms",
            listing["p99_ms"] <= 50,
        ),
        Line(
            "memory",
            "memory RSS per service (idle / under lifecycle load)",
            ", ".join(f"{s} {idle.get(s, 0):.0f}/{load.get(s, 0):.0f} MB" for s in idle),
            "—",
            None,
            "≤ 150 MB idle",
            idle_max <= 150,
        ),
        Line(
            "portal",
            f"portal pages, server time p95 at {r['list_seed']['total']:,} dossiers"
            f" ({len(portal['pages'])} pages, slowest)",
            f"{portal['slowest']}: p95 {portal['max_p95_ms']} ms",
            "—",
            None,
            "p95 ≤ 150 ms",
            portal["max_p95_ms"] <= 150,
        ),
        *(
            Line(
                "portal_action",
                f"portal action (not a page view): {name}",
                f"p50 {t['p50_ms']} ms, p95 {t['p95_ms']} ms",
                "—",
                None,
                "—",
                None,
            )
            for name, t in portal.get("actions", {}).items()
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="weerbaar bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny counts, seconds (CI)")
    parser.add_argument(
        "--out",
        type=Path,
        help="default bench/results/system.json (system-quick.json with --quick)",
    )
    args = parser.parse_args(argv)
    results = Path(__file__).parent / "results"
    out = args.out or results / ("system-quick.json" if args.quick else "system.json")
    run(QUICK if args.quick else FULL, out, args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
