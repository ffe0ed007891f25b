"""Example data for ``mtasecure demo``, shipped inside the package (no network needed).

``world.toml`` is the world the demo's first part runs on (DNS records, MTA-STS
policies, SMTP servers and the time; read by :class:`mtasecure.testing.World`).

``sts/<domain>/`` holds, per example Policy Domain:

* ``record.txt`` — the TXT strings found at ``_mta-sts.<domain>``, one per line;
* ``policy.txt`` — the policy file exactly as served (line endings included);
* ``mx.txt`` — the domain's MX records as ``preference host``, one per line.

Lines starting with ``#`` in ``record.txt`` and ``mx.txt`` are comments.
"""
