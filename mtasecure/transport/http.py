"""The default :class:`~mtasecure.transport.HttpClient`, on httpx (RFC 8461 §3.3 fetches).

What it does for each request:

* Resolves the URL's host through mtasecure's own
  :class:`~mtasecure.transport.Resolver` (A, then AAAA), so one DNS
  configuration governs everything, and connects to the address it got. The
  URL's host name is kept for the TLS server name (SNI) and for the
  certificate check (httpcore's ``sni_hostname`` request extension sets the
  ``server_hostname`` that OpenSSL verifies) and for the ``Host`` header.
  That is the whole trick: the request URL carries the address, the extension
  and the header carry the name.
* Validates the server certificate with OpenSSL against a
  :class:`~mtasecure.certs.TrustStore` (by default the system's, from
  :func:`~mtasecure.transport.trust.load_system_trust_store`): a trusted
  chain, not expired, valid for the host name (RFC 8461 §3.3, RFC 6125).
  A rejected certificate raises :class:`~mtasecure.errors.HttpError` with
  ``certificate=True``.
* Opens a new connection for every request (no keep-alive): connections
  are keyed by address, and a connection verified for one name must never
  carry a request for another name at the same address.
* Never follows redirects, sends no caching headers and keeps no HTTP cache
  (RFC 8461 §3.3); asks for an unencoded body; streams the body and stops
  after ``max_bytes + 1`` octets.
* Bounds the connection set-up (``connect_timeout``) and the whole exchange
  (``timeout``, resolution included).
* Optionally refuses non-public addresses (``public_only``: loopback,
  private, link-local, shared, reserved... anything not
  :attr:`ipaddress.IPv4Address.is_global`), against a policy host name
  pointed at the sender's own network.
* Uses a proxy only when asked: ``proxy="http://..."``, or
  ``trust_env=True`` to read ``HTTPS_PROXY`` and friends. Through a proxy the
  proxy resolves the name, so neither the resolver nor ``public_only``
  applies; the certificate is still checked end to end.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import httpx
from cryptography.hazmat.primitives.serialization import Encoding

import mtasecure
from mtasecure._http import HttpResponse
from mtasecure.certs import TrustStore
from mtasecure.errors import HttpError, TransportTimeout, UsageError
from mtasecure.transport._protocols import Resolver
from mtasecure.transport.trust import load_system_trust_store

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "MAX_ADDRESSES",
    "HttpsClient",
    "ssl_context",
]

DEFAULT_CONNECT_TIMEOUT = 10.0
"""Seconds to set up one connection (TCP and TLS handshake)."""
DEFAULT_TIMEOUT = 60.0
"""Seconds for a whole exchange when the caller names none (RFC 8461 §3.3: "one minute")."""
MAX_ADDRESSES = 4
"""Most addresses of one host tried, in order, before giving up."""

_USER_AGENT = f"mtasecure/{mtasecure.__version__}"


def ssl_context(trust: TrustStore) -> ssl.SSLContext:
    """An OpenSSL client context that trusts exactly ``trust``'s anchors.

    Host-name checking is on and TLS 1.2 is the floor (RFC 8461 §3.3 relies on
    RFC 6125 name checks; RFC 8996 retired older versions).
    """
    pem = "".join(c.public_bytes(Encoding.PEM).decode("ascii") for c in trust.certificates)
    context = ssl.create_default_context(cadata=pem)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class HttpsClient:
    """An :class:`~mtasecure.transport.HttpClient` on httpx (module docstring says how).

    Args:
        resolver: resolves host names; ``None`` means the host names are
            resolved by the system (only sensible with a proxy).
        trust: the trust anchors; ``None`` loads the system's.
        connect_timeout: seconds for TCP and TLS set-up.
        public_only: refuse addresses that are not globally routable.
        proxy: a proxy URL, used for every request.
        trust_env: read ``HTTPS_PROXY``/``NO_PROXY`` (and nothing else) from
            the environment.

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
        self._proxied = proxy is not None or trust_env
        try:
            self._client = httpx.AsyncClient(
                verify=ssl_context(trust),
                follow_redirects=False,
                trust_env=trust_env,
                proxy=proxy,
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
                http1=True,
                http2=False,
            )
        except (httpx.HTTPError, ValueError, TypeError) as exc:
            raise UsageError(f"cannot build the HTTPS client: {exc}") from exc

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool; idempotent."""
        await self._client.aclose()

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
        return await self._exchange("POST", url, (body, content_type), 65536, timeout)

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
        try:
            target = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise HttpError(f"{url!r} is not a URL: {exc}") from exc
        if target.scheme != "https" or not target.host:
            raise HttpError(f"{url!r} is not an https URL")
        request = _Request(method, url, target, upload, max_bytes, timeout)
        try:
            async with asyncio.timeout(timeout):
                return await self._try_addresses(request)
        except TimeoutError as exc:
            if isinstance(exc, TransportTimeout):
                raise
            raise TransportTimeout(
                f"{url}: timed out, no complete answer within {timeout} s"
            ) from exc

    async def _try_addresses(self, request: _Request) -> HttpResponse:
        host = request.target.host
        if self._proxied or self.resolver is None:
            addresses: list[str | None] = [None]
        else:
            addresses = [*await self._addresses(host)]
        last: HttpError | None = None
        for address in addresses:
            try:
                return await self._once(request, address)
            except _ConnectionFailed as exc:
                last = exc
        assert last is not None
        raise last

    async def _addresses(self, host: str) -> list[str]:
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            found = [str(literal)]
        else:
            assert self.resolver is not None
            found = []
            problems = []
            for rdtype in ("A", "AAAA"):
                answer = await self.resolver.resolve(host, rdtype)
                if answer.failed:
                    problems.append(f"{rdtype}: {answer.why or 'lookup failed'}")
                found += [r for r in answer.records if _is_address(r)]
                if len(found) >= MAX_ADDRESSES:
                    break
            if not found:
                why = "; ".join(problems) or "no A or AAAA record"
                raise HttpError(f"{host}: no address to connect to ({why})")
        if self.public_only:
            public = [a for a in found if ipaddress.ip_address(a).is_global]
            if not public:
                raise HttpError(
                    f"{host}: refusing non-public address {found[0]} (public_only is on)"
                )
            found = public
        return found[:MAX_ADDRESSES]

    async def _once(self, request: _Request, address: str | None) -> HttpResponse:
        method, url, target, upload = request.method, request.url, request.target, request.upload
        max_bytes, timeout = request.max_bytes, request.timeout
        host = target.host
        headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
        extensions = {}
        request_url = target
        if address is not None:
            request_url = target.copy_with(host=address)
            default = target.port is None or target.port == 443
            headers["Host"] = host if default else f"{host}:{target.port}"
            extensions["sni_hostname"] = host
        content = None
        if upload is not None:
            content, headers["Content-Type"] = upload
        limits = httpx.Timeout(timeout, connect=min(self.connect_timeout, timeout))
        try:
            async with self._client.stream(
                method,
                request_url,
                headers=headers,
                content=content,
                extensions=extensions,
                timeout=limits,
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
        except httpx.TimeoutException as exc:
            raise TransportTimeout(f"{url}: timed out ({type(exc).__name__})") from exc
        except httpx.ConnectError as exc:
            certificate = _certificate_failure(exc)
            where = f" at {address}" if address else ""
            message = f"{url}{where}: {_describe(exc)}"
            if certificate:
                raise HttpError(message, certificate=True) from exc
            raise _ConnectionFailed(message) from exc
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, OSError) as exc:
            raise HttpError(f"{url}: {_describe(exc)}") from exc


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    url: str
    target: httpx.URL
    upload: tuple[bytes, str] | None
    max_bytes: int
    timeout: float


class _ConnectionFailed(HttpError):
    """No connection to one address: the next address may be tried."""


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
        if "CERTIFICATE_VERIFY_FAILED" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
