"""The default :class:`~mtasecure.transport.HttpClient`: HTTPS on asyncio and h11 (RFC 8461 §3.3 fetches).

What it does for each request:

* Resolves the URL's host through mtasecure's own
  :class:`~mtasecure.transport.Resolver` (A records, then AAAA if there are
  none), so one DNS configuration governs everything, and connects to the
  addresses it got, in order (:meth:`AsyncioBackend.addresses`). The TLS
  server name (SNI), the certificate check and the ``Host`` header all use
  the URL's host name. The connection is an asyncio stream with OpenSSL's
  TLS (one ``open_connection``, TCP and handshake together) and HTTP/1.1 is
  spoken over it with h11 (a sans-I/O parser, the one httpcore uses): no
  connection pool, no per-request async-library detection, so a fetch costs
  little more than its TLS handshake.
* Validates the server certificate with OpenSSL against a
  :class:`~mtasecure.certs.TrustStore` (by default the system's, from
  :func:`~mtasecure.transport.trust.load_system_trust_store`): a trusted
  chain, not expired, valid for the host name (RFC 8461 §3.3, RFC 6125).
  A rejected certificate raises :class:`~mtasecure.errors.HttpError` with
  ``certificate=True``.
* Opens a new connection for every request and closes it after the answer
  (``Connection: close``, no keep-alive, no TLS session resumption): a policy
  host is asked once a day at most, and nothing is shared between fetches.
  The OpenSSL context (the trust anchors) is built once per trust store.
* Never follows redirects, sends no caching headers and keeps no HTTP cache
  (RFC 8461 §3.3); asks for an unencoded body; streams the body and stops
  after ``max_bytes + 1`` octets; refuses a header section over
  :data:`MAX_HEADER_BYTES`.
* Bounds the connection set-up (``connect_timeout``) and the whole exchange
  (``timeout``, resolution included).
* Optionally refuses non-public addresses (``public_only``: loopback,
  private, link-local, shared, reserved... anything not
  :attr:`ipaddress.IPv4Address.is_global`), against a policy host name
  pointed at the sender's own network.
* Uses a proxy only when asked: ``proxy="http://..."``, or
  ``trust_env=True`` to read ``HTTPS_PROXY`` and friends. Through a proxy the
  proxy resolves the name (httpx's own transport is used), so neither the
  resolver nor ``public_only`` applies; the certificate is still checked end
  to end. :class:`AsyncioBackend` remains an httpcore network backend for
  anyone who wants httpx itself to resolve through a :class:`Resolver`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import re
import socket
import ssl
import urllib.request
from collections.abc import Iterable
from typing import Any, NamedTuple

import h11
import httpcore
import httpx
from cryptography.hazmat.primitives.serialization import Encoding

import mtasecure
from mtasecure._http import HttpResponse
from mtasecure.certs import TrustStore
from mtasecure.errors import HttpError, TransportTimeout, UsageError
from mtasecure.sts._fetch import DEFAULT_FETCH_TIMEOUT
from mtasecure.transport._closing import AsyncClosing
from mtasecure.transport._protocols import Resolver
from mtasecure.transport.trust import load_system_trust_store

# Plain sorted() order, which tests/test_exported_members.py checks.
__all__ = [  # noqa: RUF022
    "AsyncioBackend",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "HttpsClient",
    "MAX_ADDRESSES",
    "MAX_HEADER_BYTES",
    "MAX_UPLOAD_REPLY_BYTES",
    "ssl_context",
]

DEFAULT_CONNECT_TIMEOUT = 10.0
"""Seconds to set up one connection (TCP and TLS handshake)."""
DEFAULT_TIMEOUT = DEFAULT_FETCH_TIMEOUT
"""Seconds for a whole exchange (RFC 8461 §3.3: "one minute"); the client's default fetch timeout."""
MAX_ADDRESSES = 4
"""Most addresses of one host tried, in order, before giving up."""
MAX_UPLOAD_REPLY_BYTES = 65536
"""Most octets of a POST reply read (RFC 8460 §5.4 upload answers are small)."""
MAX_HEADER_BYTES = 16384
"""Largest status line plus header section accepted from a server."""
READ_CHUNK = 65536
"""Octets asked of the TLS stream per read."""

_USER_AGENT = f"mtasecure/{mtasecure.__version__}"
_HEADERS = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}


def ssl_context(trust: TrustStore) -> ssl.SSLContext:
    """An OpenSSL client context that trusts exactly ``trust``'s anchors.

    Host-name checking is on and TLS 1.2 is the floor (RFC 8461 §3.3 relies on
    RFC 6125 name checks; RFC 8996 retired older versions).
    """
    pem = "".join(c.public_bytes(Encoding.PEM).decode("ascii") for c in trust.certificates)
    context = ssl.create_default_context(cadata=pem)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class _Target(NamedTuple):
    """What a request needs of its URL: the host (A-labels or an IP literal), port, path."""

    host: str
    port: int | None  # None for the default, 443
    path: bytes  # path and query, as sent in the request line


# The URLs this client is usually given (``https://mta-sts.<domain>/...``, TLS-RPT
# ``rua`` endpoints) are lower-case ASCII host names with a plain path; for them a
# regular expression gives exactly what httpx's general URL parser would (tests
# compare the two), at a small fraction of its cost. Anything else is parsed by httpx.
_PLAIN_URL = re.compile(
    r"https://([a-z0-9-]+(?:\.[a-z0-9-]+)*)(?::([0-9]{1,5}))?"
    r"(/[A-Za-z0-9._~!$&'()*+,;=:@/-]*(?:\?[A-Za-z0-9._~!$&'()*+,;=:@/?-]*)?)"
)

_DOT_SEGMENT = re.compile(r"/\.\.?(?:/|$)")


def _parse_url(url: str) -> _Target:
    """The host, port and request target of an ``https`` URL.

    Raises:
        HttpError: ``url`` is not a URL, or not an ``https`` URL with a host.
    """
    plain = _PLAIN_URL.fullmatch(url) if isinstance(url, str) else None
    # Dot segments ("/./", "/../") are removed by the general parser (RFC 3986 §5.2.4).
    if plain is not None and not _DOT_SEGMENT.search(plain.group(3).partition("?")[0]):
        host, port, path = plain.groups()
        if port is None or (number := int(port)) == 443:
            return _Target(host, None, path.encode("ascii"))
        if number <= 65535:
            return _Target(host, number, path.encode("ascii"))
    try:
        target = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise HttpError(f"{url!r} is not a URL: {exc}") from exc
    if target.scheme != "https" or not target.host:
        raise HttpError(f"{url!r} is not an https URL")
    return _Target(target.raw_host.decode("ascii"), target.port, target.raw_path)


@functools.lru_cache(maxsize=8)
def _shared_context(trust: TrustStore) -> ssl.SSLContext:
    """:func:`ssl_context` built once per trust store (loading anchors is the costly part).

    Never modified after it is built, so every client with the same store can share it.
    """
    return ssl_context(trust)


class HttpsClient(AsyncClosing):
    """An :class:`~mtasecure.transport.HttpClient`: asyncio + h11, httpx through a proxy (module docstring).

    Args:
        resolver: resolves host names; ``None`` lets the system resolve them
            (``getaddrinfo``), which also makes ``public_only`` apply to what
            the system answered.
        trust: the trust anchors; ``None`` loads the system's.
        connect_timeout: seconds for TCP and TLS set-up.
        public_only: refuse addresses that are not globally routable.
        proxy: a proxy URL, used for every request.
        trust_env: read ``HTTPS_PROXY``/``NO_PROXY`` from the environment.

    Raises:
        UsageError: a timeout is not positive, or the trust store cannot be had.
    """

    def __init__(
        self,
        *,
        resolver: Resolver | None = None,
        trust: TrustStore | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        public_only: bool = False,
        proxy: str | None = None,
        trust_env: bool = False,
    ) -> None:
        if connect_timeout <= 0:
            raise UsageError(f"connect_timeout must be positive, not {connect_timeout}")
        if trust is None:
            trust = load_system_trust_store()
        self.resolver = resolver
        self.connect_timeout = connect_timeout
        self.public_only = public_only
        self._context = _shared_context(trust)
        self._backend = AsyncioBackend(resolver=resolver, public_only=public_only)
        if proxy is None and trust_env:
            proxy = urllib.request.getproxies_environment().get("https")
            self._env_proxy = True
        else:
            self._env_proxy = False
        try:
            # httpx reads nothing from the environment here: the proxy (if
            # any) was chosen above, and the trust store is explicit.
            self._proxied = (
                httpx.AsyncClient(
                    verify=self._context,
                    proxy=proxy,
                    follow_redirects=False,
                    trust_env=False,
                    limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
                )
                if proxy
                else None
            )
        except (httpx.HTTPError, ValueError, TypeError) as exc:
            raise UsageError(f"cannot build the HTTPS client: {exc}") from exc

    async def aclose(self) -> None:
        """Close the proxy's connection pool, if any; idempotent (direct connections are never kept)."""
        if self._proxied is not None:
            await self._proxied.aclose()

    async def get(self, url: str, *, max_bytes: int, timeout: float) -> HttpResponse:
        """GET ``url``, reading at most ``max_bytes + 1`` octets of body.

        Raises:
            HttpError: no address, a refused address, a connection, TLS or
                protocol failure (``certificate=True`` when the certificate
                was rejected).
            TransportTimeout: ``timeout`` ran out.
        """
        return await self._exchange("GET", url, None, max_bytes, timeout)

    async def post(
        self, url: str, *, body: bytes, content_type: str, timeout: float
    ) -> HttpResponse:
        """POST ``body`` to ``url`` (RFC 8460 §5.4 report upload); same rules as :meth:`get`."""
        return await self._exchange(
            "POST", url, (body, content_type), MAX_UPLOAD_REPLY_BYTES, timeout
        )

    async def _exchange(
        self,
        method: str,
        url: str,
        upload: tuple[bytes, str] | None,
        max_bytes: int,
        timeout: float,
    ) -> HttpResponse:
        if timeout <= 0:
            raise UsageError(f"timeout must be positive, not {timeout}")
        target = _parse_url(url)
        headers = dict(_HEADERS)
        content = None
        if upload is not None:
            content, headers["Content-Type"] = upload
        try:
            async with asyncio.timeout(timeout):
                if self._proxied is not None and not (
                    self._env_proxy and urllib.request.proxy_bypass(target.host)
                ):
                    limits = httpx.Timeout(timeout, connect=min(self.connect_timeout, timeout))
                    return await self._via_proxy(
                        self._proxied,
                        url,
                        method=method,
                        headers=headers,
                        content=content,
                        max_bytes=max_bytes,
                        timeout=limits,
                    )
                return await self._direct(
                    url,
                    target,
                    method=method,
                    headers=headers,
                    content=content,
                    max_bytes=max_bytes,
                )
        except (HttpError, TransportTimeout):
            raise
        except TimeoutError as exc:
            raise TransportTimeout(
                f"{url}: timed out, no complete answer within {timeout} s"
            ) from exc
        except httpx.TimeoutException as exc:
            raise TransportTimeout(f"{url}: timed out ({type(exc).__name__})") from exc
        except (
            httpx.HTTPError,
            httpx.InvalidURL,
            httpx.StreamError,
            h11.ProtocolError,
            OSError,
        ) as exc:
            certificate = _certificate_failure(exc)
            raise HttpError(f"{url}: {_describe(exc)}", certificate=certificate) from exc

    async def _direct(
        self,
        url: str,
        target: _Target,
        *,
        method: str,
        headers: dict[str, str],
        content: bytes | None,
        max_bytes: int,
    ) -> HttpResponse:
        """One HTTP/1.1 exchange on a new TLS connection of its own (h11 over asyncio streams)."""
        host = target.host
        port = target.port or 443
        reader, writer = await self._connect(host, port)
        try:
            authority = f"[{host}]" if ":" in host else host
            if target.port is not None and target.port != 443:
                authority = f"{authority}:{port}"
            fields = [("Host", authority), *headers.items(), ("Connection", "close")]
            if content is not None:
                fields.append(("Content-Length", str(len(content))))
            http = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEADER_BYTES + 1)
            request = http.send(h11.Request(method=method, target=target.path, headers=fields))
            if content:
                request += http.send(h11.Data(data=content))
            request += http.send(h11.EndOfMessage())
            writer.write(request)
            await writer.drain()
            response: h11.Response | None = None
            body = bytearray()
            truncated = False
            head = 0  # octets received before the final status line and headers were whole
            while True:
                event = http.next_event()
                if event is h11.NEED_DATA:
                    if response is not None:
                        http.receive_data(await reader.read(READ_CHUNK))
                        continue
                    if head > MAX_HEADER_BYTES:
                        raise HttpError(f"{url}: header section over {MAX_HEADER_BYTES} octets")
                    # Ask for no more than the header bound allows, so an
                    # oversized header section cannot arrive whole in one read.
                    data = await reader.read(MAX_HEADER_BYTES + 1 - head)
                    head += len(data)
                    http.receive_data(data)
                elif isinstance(event, h11.Response):
                    response = event
                elif isinstance(event, h11.Data):
                    body += event.data
                    if len(body) > max_bytes:
                        truncated = True
                        del body[max_bytes + 1 :]
                        break
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    break
                # h11.InformationalResponse (1xx): wait for the final answer.
            if response is None:  # pragma: no cover - h11 raises before this
                raise HttpError(f"{url}: the server closed the connection without an answer")
            return HttpResponse(
                url=url,
                status=response.status_code,
                headers=tuple(
                    (name.decode("latin-1"), value.decode("latin-1"))
                    for name, value in response.headers
                ),
                body=bytes(body),
                truncated=truncated,
            )
        finally:
            # No close_notify wait: the exchange is complete, or abandoned.
            writer.transport.abort()

    async def _connect(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TLS connection to the first of ``host``'s addresses that completes one.

        Each address gets ``connect_timeout`` for TCP and the handshake
        together; a refused connection or a timeout moves on to the next
        address, but a rejected certificate or a failed handshake ends the
        attempt (another address of the same name is no more trustworthy).
        """
        addresses = await self._backend.addresses(host, port)
        problems = []
        for address in addresses:
            try:
                async with asyncio.timeout(self.connect_timeout):
                    return await asyncio.open_connection(
                        address,
                        port,
                        ssl=self._context,
                        server_hostname=host,
                        ssl_handshake_timeout=self.connect_timeout,
                    )
            except ssl.SSLCertVerificationError as exc:
                raise HttpError(
                    f"certificate of {host} rejected: {exc.verify_message or exc}",
                    certificate=True,
                ) from exc
            except ssl.SSLError as exc:
                raise HttpError(f"TLS handshake with {host} failed: {exc}") from exc
            except TimeoutError:
                problems.append(f"{address}: connection or TLS handshake timed out")
            except OSError as exc:
                problems.append(f"{address}: {exc.strerror or exc}")
        raise HttpError(f"cannot connect to {host} port {port} ({'; '.join(problems)})")

    @staticmethod
    async def _via_proxy(
        client: httpx.AsyncClient,
        url: str,
        *,
        method: str,
        headers: dict[str, str],
        content: bytes | None,
        max_bytes: int,
        timeout: httpx.Timeout,
    ) -> HttpResponse:
        async with client.stream(
            method, url, headers=headers, content=content, timeout=timeout
        ) as response:
            body = bytearray()
            truncated = False
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > max_bytes:
                    truncated = True
                    del body[max_bytes + 1 :]
                    break
            return HttpResponse(
                url=url,
                status=response.status_code,
                headers=tuple((k.lower(), v) for k, v in response.headers.multi_items()),
                body=bytes(body),
                truncated=truncated,
            )


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend on asyncio streams that resolves through a :class:`Resolver`.

    ``connect_tcp(host, port)`` looks ``host`` up (A, then AAAA if there is
    none; an IP literal is used as it is), refuses non-public addresses when
    ``public_only`` is set, and tries up to :data:`MAX_ADDRESSES` addresses in
    order. ``start_tls`` runs the handshake with the server name httpcore
    passes (the URL's host), so OpenSSL checks the certificate against it.

    Args:
        resolver: the resolver; ``None`` uses the system's ``getaddrinfo``.
        public_only: refuse addresses that are not globally routable.
    """

    def __init__(self, *, resolver: Resolver | None, public_only: bool = False) -> None:
        self.resolver = resolver
        self.public_only = public_only

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Resolve ``host`` and connect to the first address that answers."""
        addresses = await self.addresses(host, port)
        problems = []
        for address in addresses:
            try:
                async with asyncio.timeout(timeout):
                    reader, writer = await asyncio.open_connection(
                        address, port, local_addr=(local_address, 0) if local_address else None
                    )
            except TimeoutError:
                problems.append(f"{address}: connect timed out")
                continue
            except OSError as exc:
                problems.append(f"{address}: {exc.strerror or exc}")
                continue
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for option in socket_options or ():
                    with contextlib.suppress(OSError):
                        sock.setsockopt(*option)
            return _AsyncioStream(reader, writer)
        raise HttpError(f"cannot connect to {host} port {port} ({'; '.join(problems)})")

    async def addresses(self, host: str, port: int) -> list[str]:
        """The addresses to try for ``host``, after the ``public_only`` guard.

        Raises:
            HttpError: no address, or none allowed.
        """
        try:
            found = [str(ipaddress.ip_address(host.strip("[]")))]
        except ValueError:
            found = await self._lookup(host, port)
        if self.public_only:
            public = [a for a in found if ipaddress.ip_address(a).is_global]
            if not public:
                raise HttpError(
                    f"{host}: refusing non-public address {found[0]} (public_only is on)"
                )
            found = public
        return found[:MAX_ADDRESSES]

    async def _lookup(self, host: str, port: int) -> list[str]:
        if self.resolver is None:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, port, type=socket.SOCK_STREAM
                )
            except OSError as exc:
                raise HttpError(f"{host}: no address to connect to ({exc})") from exc
            return list(dict.fromkeys(str(info[4][0]) for info in infos))
        problems = []
        for rdtype in ("A", "AAAA"):
            answer = await self.resolver.resolve(host, rdtype)
            if answer.failed:
                problems.append(f"{rdtype}: {answer.why or 'lookup failed'}")
            found = [r for r in answer.records if _is_address(r)]
            if found:
                return found
        why = "; ".join(problems) or "no A or AAAA record"
        raise HttpError(f"{host}: no address to connect to ({why})")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Not supported: policy hosts are reached over TCP."""
        raise HttpError("Unix sockets are not supported")

    async def sleep(self, seconds: float) -> None:
        """Sleep on the event loop."""
        await asyncio.sleep(seconds)


class _AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError as exc:
            raise TransportTimeout(f"no data within {timeout} s") from exc
        except OSError as exc:
            raise HttpError(f"read failed: {exc}") from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            async with asyncio.timeout(timeout):
                self._writer.write(buffer)
                await self._writer.drain()
        except TimeoutError as exc:
            raise TransportTimeout(f"could not send within {timeout} s") from exc
        except OSError as exc:
            raise HttpError(f"write failed: {exc}") from exc

    async def aclose(self) -> None:
        # No close_notify wait: the exchange is complete, or abandoned.
        self._writer.transport.abort()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except ssl.SSLCertVerificationError as exc:
            self._writer.transport.abort()
            raise HttpError(
                f"certificate of {server_hostname} rejected: {exc.verify_message or exc}",
                certificate=True,
            ) from exc
        except TimeoutError as exc:
            self._writer.transport.abort()
            raise TransportTimeout(f"TLS handshake with {server_hostname} timed out") from exc
        except (ssl.SSLError, OSError) as exc:
            self._writer.transport.abort()
            raise HttpError(f"TLS handshake with {server_hostname} failed: {exc}") from exc
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._writer.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._writer.get_extra_info("sockname")
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        if info == "socket":
            return self._writer.get_extra_info("socket")
        if info == "is_readable":
            return self._reader.at_eof() or self._writer.transport.is_closing()
        return None


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _certificate_failure(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        if isinstance(current, HttpError) and current.certificate:
            return True
        current = current.__cause__ or current.__context__
    return False


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
