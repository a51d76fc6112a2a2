"""The platform: the chassis every service runs on (event store, relay, consumers, projections,
registers, runtime), its web, auth, settings and telemetry, and the compliance cryptography."""
