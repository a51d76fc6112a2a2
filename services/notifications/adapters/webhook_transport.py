"""The webhook sender's HTTP transport: every connection goes to an address checked just before.

A callback URL names a host; what it resolves to can change between the subscription and a
delivery, and between a check and the connection (DNS rebinding). So the check is part of the
connection itself: httpcore asks this module's network backend for a TCP connection to the URL's
host, the backend resolves the name **once** (``Resolver``, injected), refuses the connection
when any answer is an address a webhook may not reach (``adres_toegestaan``), and connects to the
checked address itself — nothing resolves the name a second time. The URL is not rewritten, so
the ``Host`` header, TLS SNI and certificate verification are all against the host name.

Built on httpcore's public API (``ConnectionPool(network_backend=...)``) rather than by replacing
a private attribute of httpx's own transport, so that an upgrade cannot quietly undo the check.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from ipaddress import IPv4Address, IPv6Address

import httpcore
import httpx

from services.notifications.domain.webhooks import adres_toegestaan

Resolver = Callable[[str, int], Sequence[str]]
"""The addresses (text) a host name resolves to for a TCP connection to ``port``."""

SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


def system_resolver(host: str, port: int) -> list[str]:
    """The operating system's resolver (``getaddrinfo``)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class AdresGeweigerd(Exception):
    """No connection was made: the callback's host did not resolve, or not to an allowed address.

    ``reden`` is the attempt's reason code (``dns_fout``, ``prive_adres``); the message holds
    nothing of the URL.
    """

    def __init__(self, reden: str) -> None:
        super().__init__(reden)
        self.reden = reden


#: When the attempt under way must end (``time.monotonic()``), or None: no limit beyond each read's.
_deadline: ContextVar[float | None] = ContextVar("weerbaar_webhook_deadline", default=None)


@contextlib.contextmanager
def attempt_deadline(seconds: float) -> Iterator[None]:
    """Every read, write and connect of the requests made inside ends ``seconds`` from now.

    httpx's timeouts are per read: a receiver that trickles its answer a byte at a time keeps a
    request alive for as long as it likes, past the hold of the delivery's claim, after which
    another sender would claim it and send it a second time.
    """
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def _remaining(timeout: float | None, error: type[Exception]) -> float | None:
    """The timeout of one network operation within the attempt's deadline."""
    deadline = _deadline.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the attempt's deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every operation ends by the deadline of the attempt using it."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _remaining(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _remaining(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(
            self._stream.start_tls(
                ssl_context, server_hostname, _remaining(timeout, httpcore.ConnectTimeout)
            )
        )

    def get_extra_info(self, info: str) -> object:
        return self._stream.get_extra_info(info)


class CheckedBackend(httpcore.NetworkBackend):
    """Resolves once, checks every address, connects to a checked one."""

    def __init__(self, resolver: Resolver, *, allow_private: bool) -> None:
        self.resolver = resolver
        self.allow_private = allow_private
        self._tcp = httpcore.SyncBackend()

    def addresses(self, host: str, port: int) -> list[IPv4Address | IPv6Address]:
        """The addresses to connect to, in the resolver's order; AdresGeweigerd when none may."""
        try:
            found: list[IPv4Address | IPv6Address] = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                found = [ipaddress.ip_address(a) for a in self.resolver(host, port)]
            except (OSError, UnicodeError, ValueError):
                raise AdresGeweigerd("dns_fout") from None
        if not found:
            raise AdresGeweigerd("dns_fout")
        # One answer not allowed refuses them all: a name that points inward is not trusted.
        if not self.allow_private and not all(adres_toegestaan(a) for a in found):
            raise AdresGeweigerd("prive_adres")
        return found

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        """A connection to the first checked address that answers."""
        options = list(socket_options or ())
        failed: httpcore.ConnectError | None = None
        for address in self.addresses(host, port):
            try:
                stream = self._tcp.connect_tcp(
                    str(address),
                    port,
                    _remaining(timeout, httpcore.ConnectTimeout),
                    local_address,
                    options,
                )
                return _DeadlineStream(stream)
            except httpcore.ConnectError as exc:
                failed = exc
        assert failed is not None
        raise failed

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        """Never: a callback is a URL on the network."""
        raise AdresGeweigerd("geen_tcp")

    def sleep(self, seconds: float) -> None:
        """As the standard backend."""
        self._tcp.sleep(seconds)


#: httpcore's errors as httpx's, most specific first (the sender tells them apart by class).
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
)


@contextlib.contextmanager
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        mapped = next((to for cls, to in _ERRORS if isinstance(exc, cls)), None)
        if mapped is None:
            raise
        raise mapped(type(exc).__name__) from exc


class _Body(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        with _as_httpx_errors():
            yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            with _as_httpx_errors():
                close()


class CheckedTransport(httpx.BaseTransport):
    """An httpx transport whose connections go through ``CheckedBackend``."""

    def __init__(
        self,
        resolver: Resolver,
        *,
        allow_private: bool,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.backend = CheckedBackend(resolver, allow_private=allow_private)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            network_backend=self.backend,
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send one request over a checked connection."""
        assert isinstance(request.stream, httpx.SyncByteStream)
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx_errors():
            response = self._pool.handle_request(core)
        assert isinstance(response.stream, Iterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_Body(response.stream),
            extensions=response.extensions,
        )

    def close(self) -> None:
        """Close the pooled connections."""
        self._pool.close()
