"""`FakeSmtp`: a scripted :class:`~mtasecure.transport.SmtpConnector` for tests.

Re-exported by :mod:`mtasecure.testing`. It opens no socket: each probe returns
the :class:`~mtasecure.transport.ProbeResult` scripted for its ``(host, port)``,
with the address filled in from the call.
"""

from __future__ import annotations

from collections.abc import Iterable

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mtasecure._names import normalize_host
from mtasecure._smtpwire import (
    EhloKeyword,
    EhloResponse,
    ProbeOutcome,
    ProbeResult,
    ProbeStage,
    SmtpReply,
)
from mtasecure.errors import UsageError

__all__ = ["FakeSmtp"]

_STAGE_OF = {
    ProbeOutcome.OK: ProbeStage.QUIT,
    ProbeOutcome.CONNECT_FAILED: ProbeStage.CONNECT,
    ProbeOutcome.BANNER_REJECTED: ProbeStage.BANNER,
    ProbeOutcome.EHLO_FAILED: ProbeStage.EHLO,
    ProbeOutcome.STARTTLS_NOT_OFFERED: ProbeStage.EHLO,
    ProbeOutcome.STARTTLS_REFUSED: ProbeStage.STARTTLS,
    ProbeOutcome.TLS_HANDSHAKE_FAILED: ProbeStage.TLS_HANDSHAKE,
}
_ORDER = list(ProbeStage)

DEFAULT_KEYWORDS = ("PIPELINING", "SIZE 10240000", "STARTTLS", "8BITMIME")
"""What the scripted EHLO reply before TLS lists unless told otherwise."""

DEFAULT_TLS_KEYWORDS = ("PIPELINING", "SIZE 10240000", "8BITMIME")
"""What the scripted EHLO reply after TLS lists unless told otherwise."""


def _ehlo(host: str, lines: Iterable[str]) -> EhloResponse:
    keywords = []
    for line in lines:
        name, *params = line.split()
        keywords.append(EhloKeyword(name=name.upper(), params=tuple(params)))
    return EhloResponse(domain=host, keywords=tuple(keywords))


class FakeSmtp:
    """Answers probes from a script, keyed by ``(host, port)``.

    Script each MX with :meth:`script` (which builds a plausible result for an
    outcome) or :meth:`add` (a result built by hand). Probing a host that has
    no script raises :class:`~mtasecure.errors.UsageError`, so a test never
    passes on a result it did not ask for. Every call is recorded in
    :attr:`calls` as ``(host, address, port)``.

    Example::

        smtp = FakeSmtp()
        smtp.script("mx.example.com", chain=[leaf, intermediate])
        smtp.script("mx2.example.com", outcome=ProbeOutcome.STARTTLS_NOT_OFFERED)
        client = MtaSecure(smtp=smtp)
    """

    def __init__(self) -> None:
        self._results: dict[tuple[str, int], ProbeResult] = {}
        self.calls: list[tuple[str, str, int]] = []

    def add(self, result: ProbeResult) -> None:
        """Answer probes of ``(result.host, result.port)`` with ``result``."""
        self._results[(normalize_host(result.host), result.port)] = result

    def script(
        self,
        host: str,
        *,
        port: int = 25,
        outcome: ProbeOutcome = ProbeOutcome.OK,
        stage: ProbeStage | None = None,
        chain: Iterable[bytes | x509.Certificate] = (),
        keywords: Iterable[str] = DEFAULT_KEYWORDS,
        tls_keywords: Iterable[str] = DEFAULT_TLS_KEYWORDS,
        tls_version: str = "TLSv1.3",
        tls_cipher: str = "TLS_AES_256_GCM_SHA384",
        detail: str = "",
    ) -> ProbeResult:
        """Script a plausible probe of ``host`` that ends in ``outcome``.

        Args:
            host: the MX name.
            port: the port the probe will ask for.
            outcome: how the probe ends.
            stage: where it ends; needed only for ``DROPPED``, ``TIMEOUT`` and
                ``PROTOCOL_ERROR`` (which can happen anywhere). Defaults to the
                stage the outcome implies.
            chain: the presented certificates, leaf first (DER or
                ``cryptography`` certificates); kept only if TLS was reached.
            keywords: EHLO lines before TLS (``"SIZE 1000"`` = keyword and params).
            tls_keywords: EHLO lines after TLS (add ``"REQUIRETLS"`` to offer it).
            tls_version: the TLS version reported when TLS was established.
            tls_cipher: the cipher reported when TLS was established.
            detail: the error detail; a default one names the outcome.

        Returns:
            The scripted result (with ``address`` empty until probed).
        """
        name = normalize_host(host)
        if stage is None:
            if outcome not in _STAGE_OF:
                raise UsageError(f"outcome {outcome} can happen at any stage: pass stage=")
            stage = _STAGE_OF[outcome]
        if outcome is ProbeOutcome.OK and stage is not ProbeStage.QUIT:
            raise UsageError("an OK probe ends at stage QUIT")
        reached = _ORDER.index(stage)

        def past(step: ProbeStage) -> bool:
            return reached > _ORDER.index(step)

        banner_seen = past(ProbeStage.BANNER) or outcome is ProbeOutcome.BANNER_REJECTED
        ehlo_seen = past(ProbeStage.EHLO) or outcome is ProbeOutcome.STARTTLS_NOT_OFFERED
        tls_seen = past(ProbeStage.TLS_HANDSHAKE)
        before = list(keywords)
        if outcome is ProbeOutcome.STARTTLS_NOT_OFFERED:
            before = [k for k in before if k.split()[0].upper() != "STARTTLS"]
        fields: dict[str, object] = {}
        if banner_seen:
            code = 554 if outcome is ProbeOutcome.BANNER_REJECTED else 220
            fields["banner"] = SmtpReply(code=code, lines=(f"{name} ESMTP",))
        if ehlo_seen:
            fields["ehlo"] = _ehlo(name, before)
        if past(ProbeStage.STARTTLS) or outcome is ProbeOutcome.STARTTLS_REFUSED:
            code = 454 if outcome is ProbeOutcome.STARTTLS_REFUSED else 220
            fields["starttls_reply"] = SmtpReply(code=code, lines=("TLS",))
        if past(ProbeStage.STARTTLS):
            fields["sni"] = name
        if tls_seen:
            fields["tls_version"] = tls_version
            fields["tls_cipher"] = tls_cipher
            fields["chain"] = tuple(
                c if isinstance(c, bytes) else c.public_bytes(Encoding.DER) for c in chain
            )
            fields["chain_complete"] = True
        if past(ProbeStage.EHLO_AFTER_TLS):
            fields["ehlo_tls"] = _ehlo(name, tls_keywords)
        result = ProbeResult.model_validate(
            {
                "host": name,
                "address": "",
                "port": port,
                "outcome": outcome,
                "stage": stage,
                "detail": detail or ("" if outcome is ProbeOutcome.OK else f"scripted {outcome}"),
                **fields,
            }
        )
        self.add(result)
        return result

    async def probe(self, host: str, address: str, *, port: int = 25) -> ProbeResult:
        """Return the result scripted for ``(host, port)``, with ``address`` filled in.

        Raises:
            UsageError: nothing was scripted for ``(host, port)``.
        """
        name = normalize_host(host)
        self.calls.append((name, address, port))
        try:
            result = self._results[(name, port)]
        except KeyError:
            raise UsageError(f"FakeSmtp has no script for {name} port {port}") from None
        return result.model_copy(update={"address": address})
