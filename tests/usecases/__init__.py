"""Use-case tests: a service's use cases through its composition root, on the in-memory store and on
PostgreSQL."""
