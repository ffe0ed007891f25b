"""The PostgreSQL report store without a server: its connect timeout and errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from mtasecure import StoreError, UsageError
from mtasecure.transport import report_postgres
from mtasecure.transport.report_postgres import PostgresReportStore


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A loopback port that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


def test_public_names_and_limits() -> None:
    assert report_postgres.__all__ == ["CONNECT_TIMEOUT", "PostgresReportStore"]
    assert report_postgres.CONNECT_TIMEOUT == 10


async def test_a_silent_server_fails_within_the_connect_timeout(silent_port: int) -> None:
    started = time.monotonic()
    with pytest.raises(StoreError, match=r"PostgreSQL report store: .*timeout"):
        await PostgresReportStore.connect(
            f"host=127.0.0.1 port={silent_port} user=x dbname=x", timeout=2
        )
    assert time.monotonic() - started < 8  # bounded by the timeout, not hung


async def test_a_refused_connection_is_a_store_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(StoreError, match="PostgreSQL report store"):
        await PostgresReportStore.connect(f"host=127.0.0.1 port={port} user=x dbname=x")


async def test_a_bad_connection_string_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="PostgreSQL report store"):
        await PostgresReportStore.connect("this is = not a conninfo =")


async def test_a_timeout_libpq_cannot_honour_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="at least 2 whole seconds"):
        await PostgresReportStore.connect("host=127.0.0.1", timeout=1)
