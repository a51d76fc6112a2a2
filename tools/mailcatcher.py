"""A development SMTP server that keeps every received mail as an .eml file.

In a test: `with MailCatcher(tmp_path) as catcher:` then send to `127.0.0.1:catcher.port` and
read back with `list_messages(tmp_path)`. Standalone:
`python -m tools.mailcatcher --dir DIR --port PORT` (port 0 picks a free one and prints it);
it stops on SIGTERM or SIGINT.

Set `fail_next = N` to make the next N deliveries answer `fail_code` (451 by default, a transient
failure) instead of storing them.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import logging
import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

__all__ = ["CaughtMail", "MailCatcher", "free_port", "list_messages", "main"]

log = logging.getLogger(__name__)

_ENVELOPE_FROM = "X-Mailcatcher-Envelope-From"
_ENVELOPE_TO = "X-Mailcatcher-Envelope-To"
_RECEIVED_AT = "X-Mailcatcher-Received-At"
_TIMESTAMP = "%Y%m%dT%H%M%S%fZ"
# Like real servers, the replies name the recipients: a client must not copy reply texts into
# its errors or logs, and tests can see whether it does.
_FAIL_REPLIES = {
    421: "421 4.3.2 Service not available",
    450: "450 4.2.0 Mailbox unavailable",
    451: "451 4.3.0 Local error in processing",
    452: "452 4.3.1 Insufficient system storage",
    550: "550 5.1.1 Mailbox unavailable",
    552: "552 5.3.4 Message too big",
    554: "554 5.0.0 Transaction failed",
}


@dataclass(frozen=True)
class CaughtMail:
    """One stored mail: envelope sender and recipients, headers, and where the .eml file is."""

    sender: str
    to: tuple[str, ...]
    subject: str
    message_id: str | None
    date: datetime | None
    received_at: datetime | None
    path: Path

    def message(self) -> EmailMessage:
        """Parse the whole stored message (bodies and attachments included)."""
        with self.path.open("rb") as file:
            return BytesParser(policy=policy.default).parse(file)


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on `host` that was free a moment ago."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class _StoringHandler:
    """aiosmtpd handler: writes each message to the directory, or fails on request."""

    def __init__(self, directory: Path, fail_next: int, fail_code: int) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._fail_next = fail_next
        self._fail_code = fail_code

    def set_failures(self, count: int, code: int) -> None:
        with self._lock:
            self._fail_next = count
            self._fail_code = code

    def failures(self) -> tuple[int, int]:
        with self._lock:
            return self._fail_next, self._fail_code

    def _take_failure(self) -> int | None:
        with self._lock:
            if self._fail_next <= 0:
                return None
            self._fail_next -= 1
            return self._fail_code

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 (aiosmtpd hook name)
        code = self._take_failure()
        if code is not None:
            recipients = ", ".join(f"<{r}>" for r in envelope.rcpt_tos)
            return f"{_FAIL_REPLIES[code]} for {recipients} (mailcatcher fail_next)"
        content = envelope.original_content
        if content is None:  # pragma: no cover - aiosmtpd always sets it before this hook
            return "451 4.3.0 No content received"
        path = _store(self.directory, envelope.mail_from or "", envelope.rcpt_tos, content)
        log.info("mailcatcher stored %s", path.name)
        return "250 2.0.0 OK"


def _store(directory: Path, mail_from: str, rcpt_tos: list[str], content: bytes) -> Path:
    received = datetime.now(UTC)
    headers = BytesParser(policy=policy.default).parsebytes(content, headersonly=True)
    message_id = headers.get("Message-ID")
    key = str(message_id).encode() if message_id else content
    name = f"{received.strftime(_TIMESTAMP)}-{hashlib.sha256(key).hexdigest()[:16]}"
    prefix = [f"{_ENVELOPE_FROM}: {mail_from}", *(f"{_ENVELOPE_TO}: {r}" for r in rcpt_tos)]
    prefix.append(f"{_RECEIVED_AT}: {received.isoformat()}")
    data = ("\r\n".join(prefix) + "\r\n").encode("utf-8") + content
    directory.mkdir(parents=True, exist_ok=True)
    # Written under a dot-name and then linked into place, so a reader never sees half a file
    # and a second mail with the same Message-ID in the same microsecond does not overwrite.
    temporary = directory / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
    temporary.write_bytes(data)
    try:
        for attempt in range(1000):
            target = directory / (f"{name}.eml" if attempt == 0 else f"{name}-{attempt}.eml")
            try:
                os.link(temporary, target)
            except FileExistsError:
                continue
            return target
        raise FileExistsError(errno.EEXIST, "no free file name", str(directory / name))
    finally:
        temporary.unlink()


def _parse_date(value: object) -> datetime | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None


def _parse_iso(value: object) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def list_messages(directory: Path) -> list[CaughtMail]:
    """Return the stored mails in `directory`, oldest first (an absent directory is empty)."""
    if not directory.is_dir():
        return []
    parser = BytesParser(policy=policy.default)
    caught: list[CaughtMail] = []
    for path in sorted(directory.glob("[!.]*.eml")):
        with path.open("rb") as file:
            headers = parser.parse(file, headersonly=True)
        envelope_to = headers.get_all(_ENVELOPE_TO) or []
        if envelope_to:
            to = tuple(str(r) for r in envelope_to)
        else:
            to = tuple(a for _, a in getaddresses([str(h) for h in headers.get_all("To") or []]))
        sender = headers.get(_ENVELOPE_FROM)
        if sender is None:
            sender = next((a for _, a in getaddresses([str(headers.get("From", ""))])), "")
        message_id = headers.get("Message-ID")
        caught.append(
            CaughtMail(
                sender=str(sender),
                to=to,
                subject=str(headers.get("Subject", "")),
                message_id=str(message_id).strip() if message_id else None,
                date=_parse_date(headers.get("Date")),
                received_at=_parse_iso(headers.get(_RECEIVED_AT)),
                path=path,
            )
        )
    return caught


class MailCatcher:
    """An SMTP server in a background thread of this process that stores mail in `directory`.

    `port=0` picks a free port on `start()`; read the chosen one from `port`.
    """

    _START_ATTEMPTS = 5

    def __init__(
        self,
        directory: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        fail_next: int = 0,
        fail_code: int = 451,
    ) -> None:
        _check_fail_code(fail_code)
        if fail_next < 0:
            raise ValueError("fail_next cannot be negative")
        self.directory = directory
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._handler = _StoringHandler(directory, fail_next, fail_code)
        self._controller: Controller | None = None

    @property
    def port(self) -> int:
        """The port the server listens on (known once started)."""
        if self._port is None:
            raise RuntimeError("the mailcatcher has not been started")
        return self._port

    @property
    def fail_next(self) -> int:
        """How many of the next deliveries will be refused with `fail_code`."""
        return self._handler.failures()[0]

    @fail_next.setter
    def fail_next(self, count: int) -> None:
        if count < 0:
            raise ValueError("fail_next cannot be negative")
        self._handler.set_failures(count, self.fail_code)

    @property
    def fail_code(self) -> int:
        """The SMTP reply code given to a delivery refused through `fail_next`."""
        return self._handler.failures()[1]

    @fail_code.setter
    def fail_code(self, code: int) -> None:
        _check_fail_code(code)
        self._handler.set_failures(self.fail_next, code)

    def fail(self, count: int, code: int = 451) -> None:
        """Refuse the next `count` deliveries with reply `code` (set both at once)."""
        if count < 0:
            raise ValueError("count cannot be negative")
        _check_fail_code(code)
        self._handler.set_failures(count, code)

    def start(self) -> None:
        """Start listening; with port 0, retry on another free port if one is taken meanwhile."""
        if self._controller is not None:
            raise RuntimeError("the mailcatcher is already running")
        self.directory.mkdir(parents=True, exist_ok=True)
        # aiosmtpd logs every MAIL FROM and RCPT TO address at INFO; addresses stay out of logs.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        attempts = self._START_ATTEMPTS if self._requested_port == 0 else 1
        for attempt in range(1, attempts + 1):
            port = self._requested_port or free_port(self.host)
            controller = Controller(
                self._handler, hostname=self.host, port=port, server_hostname="mailcatcher"
            )
            try:
                controller.start()
            except OSError as exc:
                # The free port can be taken between probing and binding; only then retry.
                if exc.errno != errno.EADDRINUSE or attempt == attempts:
                    raise
                continue
            self._controller = controller
            self._port = port
            return

    def stop(self) -> None:
        """Stop listening and wait for the server thread; a stopped catcher can start again."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> MailCatcher:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _check_fail_code(code: int) -> None:
    if code not in _FAIL_REPLIES:
        raise ValueError(f"fail_code must be one of {sorted(_FAIL_REPLIES)}")


class _StopRequested(Exception):
    """Raised by the SIGTERM/SIGINT handler of `main` to end the wait."""


def main(argv: list[str] | None = None) -> int:
    """Run a mailcatcher until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.mailcatcher", description="Development SMTP server."
    )
    parser.add_argument("--dir", type=Path, required=True, help="where to write the .eml files")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=1025, help="port to listen on (0: any free)")
    parser.add_argument(
        "--fail-next", type=int, default=0, help="refuse the first N deliveries with 451"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    stop_signals = (signal.SIGTERM, signal.SIGINT)

    def request_stop(signum: int, frame: FrameType | None) -> None:
        # Raising (as SIGINT's KeyboardInterrupt does) interrupts the wait below at once; a
        # second signal is ignored so it cannot break off the orderly stop.
        for other in stop_signals:
            signal.signal(other, signal.SIG_IGN)
        raise _StopRequested

    previous: dict[int, Any] = {
        signum: signal.signal(signum, request_stop) for signum in stop_signals
    }
    catcher = MailCatcher(args.dir, args.host, args.port, fail_next=args.fail_next)
    try:
        try:
            catcher.start()
        except OSError as exc:
            log.error("mailcatcher cannot listen on %s:%s: %s", args.host, args.port, exc.strerror)
            return 1
        # One parseable line on stdout, so a parent that asked for port 0 learns the port.
        print(f"mailcatcher listening on {catcher.host}:{catcher.port} dir={args.dir}", flush=True)
        threading.Event().wait()
    except _StopRequested:
        pass
    finally:
        catcher.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    log.info("mailcatcher stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
