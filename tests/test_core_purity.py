"""The pure core does no I/O, reads no clock and no environment (ARCHITECTURE.md).

Two checks: an AST scan of every core module's own imports and calls, and an
import-graph check in a fresh interpreter. ``socket`` is checked only by the
AST scan, because ``cryptography`` and ``dnspython`` (allowed in the core)
import it themselves.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mtasecure"
SHELL = {
    "transport",
    "client.py",
    "cli.py",
    "_cli_cache.py",
    "testing.py",
    "integrations",
    "__main__.py",
    "_world.py",  # builds the fakes of testing.py from a world file
    "_explain.py",  # the CLI's walk through the client (demo, check)
}
BANNED_IMPORTS = ("httpx", "dns.resolver", "dns.asyncresolver", "socket", "ssl", "asyncio")
BANNED_CALLS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "monotonic"),
    ("os", "getenv"),
}


def core_modules() -> list[Path]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        top = path.relative_to(PACKAGE).parts[0]
        if top not in SHELL:
            found.append(path)
    return found


def _banned(module: str) -> bool:
    return any(module == b or module.startswith(b + ".") for b in BANNED_IMPORTS)


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_module_has_no_io_imports_or_clock_reads(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            problems += [a.name for a in node.names if _banned(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if _banned(node.module):
                problems.append(node.module)
            problems += [
                f"{node.module}.{a.name}" for a in node.names if _banned(f"{node.module}.{a.name}")
            ]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and (owner.id, node.func.attr) in BANNED_CALLS:
                problems.append(f"{owner.id}.{node.func.attr}()")
        elif isinstance(node, ast.Attribute) and node.attr == "environ":
            problems.append("os.environ")
    assert problems == [], f"{path.name} reaches for I/O, the clock or the environment"


def test_core_modules_exist() -> None:
    names = {p.relative_to(PACKAGE).parts[0] for p in core_modules()}
    assert {"_names.py", "errors.py", "results.py"} <= names


def test_importing_the_core_loads_no_io_module() -> None:
    modules = [
        "mtasecure."
        + ".".join(p.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
        for p in core_modules()
    ]
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "bad = [m for m in ('httpx', 'dns.resolver', 'dns.asyncresolver', 'ssl', 'asyncio')"
        " if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=PACKAGE.parent,
    )
    assert out.stdout.strip() == ""
