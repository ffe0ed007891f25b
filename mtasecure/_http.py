"""HTTP value types shared by the core and the shell.

The core judges a finished exchange (RFC 8461 §3.3 rules for MTA-STS policy
fetches, RFC 8460 §5.4 for report uploads); the shell performs it. A user's own
:class:`~mtasecure.transport.HttpClient` returns :class:`HttpResponse` values
and never has to build an httpx object.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["HttpResponse"]


class HttpResponse(BaseModel):
    """What an HTTPS exchange returned.

    Attributes:
        url: the URL that was requested.
        status: the HTTP status code.
        headers: header fields, names lower-cased, in arrival order.
        body: the body as received, at most the client's size cap plus one
            byte (so the core can tell that the cap was exceeded).
        truncated: the client stopped reading because the body passed its cap.
        redirected: a redirect was followed (RFC 8461 §3.3 forbids it; clients
            should not follow them, and the core rejects the answer if they did).
    """

    model_config = ConfigDict(frozen=True)

    url: str
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    truncated: bool = False
    redirected: bool = False

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or ``None``."""
        wanted = name.lower()
        for key, value in self.headers:
            if key == wanted:
                return value
        return None
