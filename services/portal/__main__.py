"""``python -m services.portal [--port N]``: the portal on uvicorn."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from services.portal.bootstrap import bootstrap
from shared.platform.logging import configure_logging
from shared.platform.settings import PortalSettings


def main() -> None:
    """Run the portal until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m services.portal")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--host", default="127.0.0.1")
    # Started like a service (``tools/system.py``): the portal has one role only.
    parser.add_argument("--role", action="append", choices=["all", "api"], default=[])
    args = parser.parse_args()
    settings = PortalSettings()
    configure_logging("portal", "INFO")
    logging.getLogger("weerbaar.portal").info("portal starting")
    # No access log: a path can name a dossier, and the portal logs no personal data.
    uvicorn.run(
        bootstrap(settings),
        host=args.host,
        port=args.port or settings.portal_port,
        access_log=False,
        log_level="warning",
        http="httptools",
    )


main()
