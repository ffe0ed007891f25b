"""Evaluate the bundled example domains with the library API (no network).

Reads the sample data shipped in the package (``mtasecure/_demo/sts/``) and,
for each domain, selects the ``_mta-sts`` record, parses the policy and
checks every MX host against it.
"""

from __future__ import annotations

from importlib import resources

from mtasecure.errors import PolicySyntaxError
from mtasecure.sts import PolicyMode, parse_policy, select_record


def main() -> None:
    root = resources.files("mtasecure._demo") / "sts"
    for folder in sorted(root.iterdir(), key=lambda f: f.name):
        txt = [
            line
            for line in (folder / "record.txt").read_text(encoding="utf-8").splitlines()
            if line and not line.startswith("#")
        ]
        record = select_record(txt)
        print(f"{folder.name}: record id {record.id if record else None}")
        try:
            policy = parse_policy((folder / "policy.txt").read_bytes())
        except PolicySyntaxError as exc:
            print(f"  policy invalid: {exc}")
            continue
        for line in (folder / "mx.txt").read_text(encoding="utf-8").splitlines():
            if not line or line.startswith("#"):
                continue
            host = line.split()[1]
            if policy.mode is PolicyMode.NONE:
                verdict = "no requirement (mode none)"
            else:
                verdict = "allowed" if policy.matches(host) else "not covered"
            print(f"  {host}: {verdict} ({policy.mode.value})")


if __name__ == "__main__":
    main()
