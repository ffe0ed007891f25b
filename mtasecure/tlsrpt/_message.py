"""The report mail: RFC 8460 §5.3 multipart/report, optionally DKIM-signed (RFC 6376).

:func:`render_report_message` builds the message for one ``mailto:`` rua:

* ``Content-Type: multipart/report; report-type="tlsrpt"`` (§5.3, §6.2) with a
  short ``text/plain`` part and the report as an ``application/tlsrpt+gzip``
  attachment (§6.5), base64, named with its §5.1 file name;
* ``TLS-Report-Domain`` and ``TLS-Report-Submitter`` (§5.3, §6.1);
* ``Subject: Report Domain: <d> Submitter: <s> Report-ID: <<id>>`` (§5.3);
* ``TLS-Required: No`` (RFC 8689 §5): a report must get through even to a
  domain whose TLS is broken, which is what it reports on (§5.3's last note);
* ``Auto-Submitted: auto-generated`` (RFC 3834 §5), so nobody auto-replies;
* meant to be DKIM-signed (RFC 6376) over :data:`SIGNED_HEADERS` with a
  :class:`DkimKey`. Signing happens in the shell, right before submission
  (:func:`mtasecure.transport.report_submit.sign_report_message`), because
  the signature's ``t=`` is the signing time. The key record should carry
  ``s=tlsrpt`` (RFC 6376 §3.6.1, RFC 8460 §3) for strict verifiers.

:func:`is_report_mail` tells an MTA that a message it is about to send is a
TLS report, so that session is not recorded (reports never beget reports).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mtasecure._names import normalize_host
from mtasecure.errors import NameSyntaxError, UsageError
from mtasecure.tlsrpt._build import BuiltReport

__all__ = [
    "SIGNED_HEADERS",
    "DkimKey",
    "is_report_mail",
    "render_report_message",
    "render_subject",
]

#: Header fields the DKIM signature covers (RFC 8460 §5.3: the TLS-Report
#: headers SHOULD be signed; RFC 6376 §5.4.1 lists the usual ones).
_POLICY = SMTP.clone(max_line_length=998)

SIGNED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "TLS-Report-Domain",
    "TLS-Report-Submitter",
    "TLS-Required",
    "Auto-Submitted",
)


class DkimKey(BaseModel):
    """What signing needs: the key, the selector ``s=`` and the domain ``d=`` (RFC 6376 §3.5).

    Attributes:
        selector: ``s=``.
        domain: ``d=``; should be (a parent of) the submitter domain.
        private_key: the PEM (PKCS#1 or PKCS#8) RSA private key; for
            ``ed25519-sha256``, the PKCS#8 PEM Ed25519 key or its 32-octet
            seed in base64.
        algorithm: ``rsa-sha256`` (RFC 6376) or ``ed25519-sha256`` (RFC 8463).
    """

    model_config = ConfigDict(frozen=True)

    selector: str = Field(min_length=1)
    domain: str = Field(min_length=1)
    private_key: bytes = Field(repr=False)
    algorithm: Literal["rsa-sha256", "ed25519-sha256"] = "rsa-sha256"


def render_subject(policy_domain: str, submitter: str, report_id: str) -> str:
    """The RFC 8460 §5.3 subject: ``Report Domain: d Submitter: s Report-ID: <id>``."""
    return f"Report Domain: {policy_domain} Submitter: {submitter} Report-ID: <{report_id}>"


def _addr(value: str, what: str) -> str:
    local, at, domain = value.rpartition("@")
    if not at or not local or any(c in value for c in "\r\n <>,"):
        raise UsageError(f"{what} {value!r} is not an addr-spec (RFC 5322 §3.4.1)")
    try:
        normalize_host(domain)
    except NameSyntaxError as exc:
        raise UsageError(f"{what} {value!r} has no valid domain (RFC 5322 §3.4.1)") from exc
    return value


def render_report_message(
    report: BuiltReport,
    *,
    sender: str,
    recipients: Sequence[str],
    now: datetime,
) -> bytes:
    """Build the RFC 8460 §5.3 mail for ``report``, signed when ``dkim`` is given.

    Args:
        report: the built report (its gzip bytes and file name are attached).
        sender: the ``From`` address (an addr-spec at the submitter domain).
        recipients: the ``To`` addresses (the ``mailto:`` rua addresses).
        now: the ``Date``.

    Returns:
        The message as bytes with CRLF line ends, ready for SMTP.

    Raises:
        UsageError: an address is not an addr-spec or ``now`` is naive.
    """
    if now.tzinfo is None:
        raise UsageError("now must be timezone-aware")
    if not recipients:
        raise UsageError("a report mail needs at least one recipient")
    _addr(sender, "sender")
    for r in recipients:
        _addr(r, "recipient")
    report_id = report.report.report_id
    msg = EmailMessage(policy=SMTP)
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = format_datetime(now)
    msg["Subject"] = render_subject(report.policy_domain, report.submitter, report_id)
    msg["Message-ID"] = f"<{report_id}>"
    msg["TLS-Report-Domain"] = report.policy_domain
    msg["TLS-Report-Submitter"] = report.submitter
    msg["TLS-Required"] = "No"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(
        f"This is an aggregate TLS report (RFC 8460) from {report.submitter}\n"
        f"about {report.policy_domain}, covering {report.report.date_range.start_datetime:%Y-%m-%d}.\n"
    )
    msg.add_attachment(
        report.gzip,
        maintype="application",
        subtype="tlsrpt+gzip",
        filename=report.filename,
    )
    # add_attachment made it multipart/mixed; RFC 8460 §5.3 wants multipart/report.
    msg.replace_header("Content-Type", 'multipart/report; report-type="tlsrpt"')
    msg.set_boundary(f"tlsrpt-{report_id.partition('@')[0]}")
    for part in msg.iter_parts():
        del part["MIME-Version"]
    # Long lines are allowed up to 998 octets (RFC 5322 §2.1.1); with the
    # default 78 the file name would be split into RFC 2231 continuations,
    # which receivers looking for filename="..." do not all read.
    return msg.as_bytes(policy=_POLICY)


def is_report_mail(headers: Iterable[tuple[str, str]]) -> bool:
    """Whether a message is a TLS report (RFC 8460 §5.3), from its header fields.

    A message carrying ``TLS-Report-Domain`` or ``TLS-Report-Submitter``, or
    whose Content-Type is ``multipart/report`` with ``report-type=tlsrpt``,
    is one. An MTA passes ``is_report_mail=True`` to
    :meth:`~mtasecure.tlsrpt.TlsRptCollector.record` for its sessions.
    """
    for name, value in headers:
        lowered = name.strip().lower()
        if lowered in {"tls-report-domain", "tls-report-submitter"}:
            return True
        if lowered == "content-type":
            compact = value.lower().replace(" ", "").replace("\t", "").replace('"', "")
            if compact.startswith("multipart/report") and "report-type=tlsrpt" in compact:
                return True
    return False
