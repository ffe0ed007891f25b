"""A fake :class:`~mtasecure.transport.HttpClient` (re-exported by :mod:`mtasecure.testing`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import TypeAlias

from mtasecure._http import HttpResponse
from mtasecure.errors import HttpError, TransportError, TransportTimeout
from mtasecure.sts._policy import policy_url

__all__ = ["FakeHttpClient", "FakeReply"]

FakeReply: TypeAlias = "HttpResponse | TransportError | Callable[[str], HttpResponse]"
"""What a URL answers: a response, an exception to raise, or a function of the URL."""


class FakeHttpClient:
    """An :class:`~mtasecure.transport.HttpClient` that answers from memory.

    It behaves like the default client where the core relies on it: bodies
    longer than ``max_bytes`` are cut to ``max_bytes + 1`` octets with
    ``truncated=True``, and redirects are returned, not followed. A URL with
    no entry fails like a refused connection.

    Args:
        replies: ``{url: reply}``; a reply is an :class:`~mtasecure.HttpResponse`,
            a :class:`~mtasecure.errors.TransportError` to raise (e.g.
            ``HttpError("...", certificate=True)``), or a function of the URL.
        delay: seconds every request waits before answering (to test
            concurrency); a request whose ``timeout`` is shorter raises
            :class:`~mtasecure.errors.TransportTimeout`.

    Attributes:
        requests: every URL asked, in order, for assertions.
    """

    def __init__(
        self, replies: Mapping[str, FakeReply] | None = None, *, delay: float = 0.0
    ) -> None:
        self._replies: dict[str, FakeReply] = dict(replies or {})
        self.delay = delay
        self.requests: list[str] = []
        self.posts: list[tuple[str, bytes, str]] = []

    def add(
        self,
        url: str,
        body: bytes | str = b"",
        *,
        status: int = 200,
        content_type: str | None = "text/plain",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer ``url`` with ``status``, ``body`` and a ``Content-Type`` (``None``: no header)."""
        fields = [(k.lower(), v) for k, v in (headers or {}).items()]
        if content_type is not None:
            fields.insert(0, ("content-type", content_type))
        data = body.encode("utf-8") if isinstance(body, str) else body
        self._replies[url] = HttpResponse(url=url, status=status, headers=tuple(fields), body=data)

    def add_policy(self, domain: str, policy: bytes | str, *, port: int | None = None) -> str:
        """Serve ``policy`` as ``domain``'s MTA-STS policy file; return its URL."""
        url = policy_url(domain)
        if port is not None and port != 443:
            url = url.replace("/.well-known/", f":{port}/.well-known/", 1)
        self.add(url, policy)
        return url

    def fail(self, url: str, error: TransportError) -> None:
        """Make every request for ``url`` raise ``error``."""
        self._replies[url] = error

    def remove(self, url: str) -> None:
        """Forget ``url`` (it then fails like a refused connection)."""
        self._replies.pop(url, None)

    async def get(self, url: str, *, max_bytes: int, timeout: float) -> HttpResponse:
        """Answer from memory, as the default client would."""
        self.requests.append(url)
        await self._wait(url, timeout)
        reply = self._replies.get(url)
        if reply is None:
            raise HttpError(f"{url}: connection refused (no fake reply)")
        if isinstance(reply, TransportError):
            raise reply
        response = reply(url) if callable(reply) else reply
        if len(response.body) > max_bytes:
            response = response.model_copy(
                update={"body": response.body[: max_bytes + 1], "truncated": True}
            )
        return response

    async def post(
        self, url: str, *, body: bytes, content_type: str, timeout: float
    ) -> HttpResponse:
        """Record the upload and answer like :meth:`get`."""
        self.posts.append((url, body, content_type))
        return await self.get(url, max_bytes=65536, timeout=timeout)

    async def _wait(self, url: str, timeout: float) -> None:
        if self.delay <= 0:
            return
        if timeout < self.delay:
            await asyncio.sleep(timeout)
            raise TransportTimeout(f"{url}: timed out after {timeout} s (fake)")
        await asyncio.sleep(self.delay)
