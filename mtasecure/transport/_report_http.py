"""A minimal :class:`~mtasecure.transport.HttpClient` on httpx, for report uploads.

It never follows redirects, caps what it reads, and translates every httpx
exception into :class:`~mtasecure.errors.HttpError` or
:class:`~mtasecure.errors.TransportTimeout`.
"""

from __future__ import annotations

import ssl

import httpx

from mtasecure._http import HttpResponse
from mtasecure.errors import HttpError, TransportTimeout

__all__ = ["MAX_RESPONSE_BYTES", "ReportHttpClient"]

#: The most of a response body read after a report POST (the answer is not used).
MAX_RESPONSE_BYTES = 64 * 1024


class ReportHttpClient:
    """An httpx-based HTTPS client that satisfies :class:`~mtasecure.transport.HttpClient`.

    Args:
        verify: an :class:`ssl.SSLContext` (e.g. trusting a private CA) or
            ``True`` for the system's trust store.
        user_agent: the User-Agent header.
    """

    def __init__(
        self, *, verify: ssl.SSLContext | bool = True, user_agent: str = "mtasecure-tlsrpt"
    ) -> None:
        self._client = httpx.AsyncClient(
            verify=verify, follow_redirects=False, headers={"user-agent": user_agent}
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def get(self, url: str, *, max_bytes: int, timeout: float) -> HttpResponse:
        """GET ``url``, reading at most ``max_bytes + 1`` bytes."""
        return await self._send("GET", url, max_bytes=max_bytes, timeout=timeout)

    async def post(
        self, url: str, *, body: bytes, content_type: str, timeout: float
    ) -> HttpResponse:
        """POST ``body`` as ``content_type`` (RFC 8460 §5.4)."""
        return await self._send(
            "POST",
            url,
            body=body,
            content_type=content_type,
            max_bytes=MAX_RESPONSE_BYTES,
            timeout=timeout,
        )

    async def _send(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        content_type: str | None = None,
        max_bytes: int,
        timeout: float,
    ) -> HttpResponse:
        headers = {"content-type": content_type} if content_type else {}
        try:
            request = self._client.build_request(
                method, url, content=body, headers=headers, timeout=timeout
            )
            response = await self._client.send(request, stream=True)
            try:
                data = bytearray()
                truncated = False
                async for chunk in response.aiter_raw():
                    data += chunk
                    if len(data) > max_bytes:
                        truncated = True
                        del data[max_bytes + 1 :]
                        break
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            raise TransportTimeout(f"{method} {url}: no answer within {timeout}s") from exc
        except (httpx.HTTPError, httpx.InvalidURL, ssl.SSLError, OSError) as exc:
            raise HttpError(f"{method} {url}: {exc}") from exc
        return HttpResponse(
            url=url,
            status=response.status_code,
            headers=tuple((k.lower(), v) for k, v in response.headers.items()),
            body=bytes(data),
            truncated=truncated,
        )
