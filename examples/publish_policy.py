"""Build what a domain owner publishes for MTA-STS: the policy file and the TXT record.

Usage: ``python examples/publish_policy.py DOMAIN MX_PATTERN [MX_PATTERN ...]``
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from mtasecure.errors import UsageError
from mtasecure.sts import build_policy, build_publication, lint_policy


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__)
        return 2
    domain, *patterns = argv
    try:
        policy = build_policy(mode="enforce", mx=patterns)
        # The caller owns the clock; the library never reads it.
        published = build_publication(domain, policy, now=datetime.now(UTC))
    except UsageError as exc:
        print(f"error: {exc}")
        return 2
    print(f"1. serve at {published.policy_url} (Content-Type: text/plain):\n")
    print(published.policy_text.replace("\r\n", "\n"))
    print(f"2. then publish:  {published.record_name}.  IN TXT  {published.record_text!r}")
    for finding in lint_policy(published.policy_text, mx_hosts=None):
        print(f"   note: {finding}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
