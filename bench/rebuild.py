"""The projection rebuild alone, repeatable in a minute: ``weerbaar replay`` against reading and
decoding the same stored rows, in turns, on logs seeded once.

``python -m bench.rebuild --data DIR [--rounds N] [--profile FILE]``

The first run with a new ``DIR`` seeds it: it starts the whole system (``tools.system.System``),
posts registrations from 8 clients for ``--seconds`` and takes ``--dossiers`` dossiers through
every step (as ``weerbaar bench`` fills the logs: every service's log gets its own events), waits
until every consumer has caught up and stops the services. Every run (the first included) then
starts PostgreSQL on ``DIR`` alone and measures ``--rounds`` times, in turns: the rebuild
(``bench.product.replay_projection``, the product's ``Rebuild`` into a fresh schema, not switched)
and the raw read + JSON decode of the same stored rows (``bench.raw.read_decode_rate`` over
``bench.product.stored_events_query``, the same query as ``weerbaar bench``). ``--profile FILE``
runs the rebuild of the last round under cProfile (its own process only; the exports are
processes of their own). Besides the rates it prints the CPU per stored event of this process
(the rebuild) and of the exports: on a shared machine the rates move with the other work, the CPU
much less.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import resource
import statistics
import time
from pathlib import Path
from typing import Any

from bench import product, raw
from shared.platform.settings import SERVICES, load_settings
from tools.embedded import free_port
from tools.system import System


def seed(system: System, seconds: float, dossiers: int) -> dict[str, Any]:
    """Fill every service's log through the running system; what was done."""
    assert system.nats_url
    system.start_services(timeout=120)
    settings = load_settings(
        database_url=system.database_url, nats_url=system.nats_url, data_dir=system.data_dir
    )
    commands = asyncio.run(product.command_rate(system.url("intake"), 8, seconds))
    asyncio.run(product.wait_quiet(system.nats_url, settings.stream_name))
    urls = {p.service: system.url(p.service) for p in system.processes}
    lifecycle = product.lifecycle(urls, system.data_dir, dossiers, 8)
    asyncio.run(product.wait_quiet(system.nats_url, settings.stream_name))
    for proc in list(system.processes):
        system.stop_process(proc)
    return {"registrations": commands.done, "lifecycle": lifecycle["completed"]}


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def main() -> None:
    """Seed (once) and measure."""
    parsed = argparse.ArgumentParser(prog="python -m bench.rebuild", description=__doc__)
    parsed.add_argument("--data", type=Path, required=True, help="the seeded system's directory")
    parsed.add_argument("--seconds", type=float, default=20.0, help="seeding: registrations for")
    parsed.add_argument("--dossiers", type=int, default=60, help="seeding: whole dossiers")
    parsed.add_argument("--rounds", type=int, default=3)
    parsed.add_argument("--profile", type=Path, help="cProfile the last round's rebuild")
    args = parsed.parse_args()
    fresh = not (args.data / "postgres").exists()
    system = System(
        data_dir=args.data,
        preferred_ports={s: free_port() for s in SERVICES},
        extra_env=product.unthrottled(),
    )
    try:
        system.start_servers()
        if fresh:
            print("seeded:", seed(system, args.seconds, args.dossiers), flush=True)
        assert system.database_url and system.nats_url
        settings = load_settings(
            database_url=system.database_url, nats_url=system.nats_url, data_dir=system.data_dir
        )
        query = product.stored_events_query(settings)
        ratios: list[float] = []
        for turn in range(args.rounds):
            profiler = cProfile.Profile() if args.profile and turn == args.rounds - 1 else None
            if profiler is not None:
                profiler.enable()
            cpu = time.process_time(), _children_cpu()
            rebuilt = product.replay_projection(settings, system.env(), "bench_replay")
            cpu_main, cpu_exports = time.process_time() - cpu[0], _children_cpu() - cpu[1]
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(args.profile)
            rows, per_s = raw.read_decode_rate(system.database_url, query)
            ratio = rebuilt["per_s"] / per_s
            ratios.append(ratio)
            print(
                json.dumps(
                    {
                        "rebuild_per_s": round(rebuilt["per_s"]),
                        "stored_events": rebuilt["stored_events"],
                        "load_s": rebuilt["load_seconds"],
                        "fold_s": rebuilt["fold_seconds"],
                        "seconds": rebuilt["seconds"],
                        "raw_rows": rows,
                        "raw_per_s": round(per_s),
                        "ratio": round(ratio, 4),
                        # CPU per stored event: what the machine's other work does not change
                        # much (the exports: the processes this one started and waited for).
                        "cpu_us_per_event": {
                            "rebuild": round(cpu_main / rebuilt["stored_events"] * 1e6),
                            "exports": round(cpu_exports / rebuilt["stored_events"] * 1e6),
                        },
                    }
                ),
                flush=True,
            )
            time.sleep(0.5)
        print(f"median ratio {statistics.median(ratios):.4f}")
    finally:
        system.stop()


if __name__ == "__main__":
    main()
