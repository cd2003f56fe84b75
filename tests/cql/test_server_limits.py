"""What a hostile client can make the embedded server hold, and password authentication.

Oversized requests are refused per stream as ScyllaDB refuses them (Invalid, "request size
too large"), an LZ4 body may not claim more than that limit, a half-sent frame is cut off
after the frame timeout, and with credentials configured the driver's PlainTextAuthProvider
logs in while anyone else is turned away.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator

import lz4.block  # type: ignore[import-untyped]
import pytest
from cassandra import AuthenticationFailed, InvalidRequest
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster, NoHostAvailable, Session

from chat.embedded.cql.process import EmbeddedCqlServer
from tests.cql import wire

MiB = 1024 * 1024
CREDENTIALS = ("chat", "s3cret-for-tests")


@pytest.fixture(scope="module")
def quick_server() -> Iterator[EmbeddedCqlServer]:
    """A server that gives up on a half-sent frame after half a second."""
    with EmbeddedCqlServer(frame_timeout=0.5) as server:
        yield server


@pytest.fixture(scope="module")
def auth_server() -> Iterator[EmbeddedCqlServer]:
    with EmbeddedCqlServer(credentials=CREDENTIALS) as server:
        yield server


def test_a_request_over_16_mib_is_refused_on_its_stream_and_the_connection_keeps_working(
    cql_server: EmbeddedCqlServer,
) -> None:
    with wire.WireClient(cql_server.host, cql_server.port) as client:
        assert client.startup().opcode == wire.OP_READY
        length = 17 * MiB
        client.send(wire.HEADER.pack(4, 0, 5, wire.OP_QUERY, length))
        chunk = b"\x00" * MiB
        for _ in range(17):  # the body arrives and is skipped, not buffered
            client.send(chunk)
        refused = client.read()
        assert refused.stream == 5
        assert refused.error_code == 0x2200
        assert refused.error_message == (
            f"request size too large (frame size {length + 9}; allowed {16 * MiB})"
        )
        supported = client.request(wire.OP_OPTIONS, b"", stream=6)
        assert (supported.opcode, supported.stream) == (wire.OP_SUPPORTED, 6)


def test_the_driver_gets_invalid_request_for_a_value_that_makes_the_frame_too_large(
    cql_server: EmbeddedCqlServer, keyspace: str
) -> None:
    cluster = Cluster([cql_server.host], port=cql_server.port, compression=False)
    try:
        session = cluster.connect(keyspace)
        session.execute("CREATE TABLE t (k int PRIMARY KEY, v blob)")
        insert = session.prepare("INSERT INTO t (k, v) VALUES (?, ?)")
        with pytest.raises(InvalidRequest, match="request size too large"):
            session.execute(insert, [1, b"\x01" * (16 * MiB + 1)])
        session.execute(insert, [2, b"\x01" * MiB])
        assert len(session.execute("SELECT v FROM t WHERE k = 2").one().v) == MiB
    finally:
        cluster.shutdown()


def test_an_lz4_body_claiming_more_than_the_limit_is_refused_before_inflating(
    cql_server: EmbeddedCqlServer, keyspace: str
) -> None:
    # Compressed, 17 MiB of zeros is tiny; its claimed size is what must be refused.
    with wire.WireClient(cql_server.host, cql_server.port) as client:
        assert client.startup("lz4").opcode == wire.OP_READY
        inflated = wire.query_body("SELECT * FROM system.local") + b"\x00" * (17 * MiB)
        packed = struct.pack(">i", len(inflated)) + lz4.block.compress(inflated, store_size=False)
        refused = client.request(wire.OP_QUERY, packed, stream=3, flags=0x01)
        assert refused.error_code == 0x2200
        assert "request size too large" in refused.error_message
        # A claim of 2 GiB with almost no data behind it: refused, nothing allocated.
        bomb = struct.pack(">i", 2**31 - 1) + b"\x00" * 16
        refused = client.request(wire.OP_QUERY, bomb, stream=4, flags=0x01)
        assert refused.error_code == 0x2200
        assert refused.stream == 4
        assert client.request(wire.OP_OPTIONS, b"", stream=7).opcode == wire.OP_SUPPORTED


def test_a_client_that_sends_half_a_header_and_stalls_is_disconnected(
    quick_server: EmbeddedCqlServer,
) -> None:
    with wire.WireClient(quick_server.host, quick_server.port) as client:
        assert client.startup().opcode == wire.OP_READY
        client.send(wire.frame(wire.OP_OPTIONS, b"", stream=1)[:5])
        started = time.monotonic()
        assert client.closed_by_server()
        assert time.monotonic() - started < 5


def test_a_client_that_stops_in_the_middle_of_a_body_is_disconnected(
    quick_server: EmbeddedCqlServer,
) -> None:
    with wire.WireClient(quick_server.host, quick_server.port) as client:
        assert client.startup().opcode == wire.OP_READY
        client.send(wire.HEADER.pack(4, 0, 1, wire.OP_QUERY, MiB) + b"\x00" * 1000)
        assert client.closed_by_server()


def test_an_idle_connection_between_frames_is_left_open(
    quick_server: EmbeddedCqlServer,
) -> None:
    with wire.WireClient(quick_server.host, quick_server.port, timeout=2.0) as client:
        assert client.startup().opcode == wire.OP_READY
        # Nothing unfinished is pending, so waiting past the frame timeout is fine.
        assert not client.closed_by_server()
        assert client.request(wire.OP_OPTIONS, b"", stream=2).opcode == wire.OP_SUPPORTED


def test_the_plain_text_auth_provider_logs_in_with_the_configured_password(
    auth_server: EmbeddedCqlServer,
) -> None:
    cluster = Cluster(
        [auth_server.host],
        port=auth_server.port,
        auth_provider=PlainTextAuthProvider(*CREDENTIALS),
    )
    try:
        session: Session = cluster.connect()
        row = session.execute("SELECT release_version FROM system.local").one()
        assert row.release_version
    finally:
        cluster.shutdown()


@pytest.mark.parametrize(
    ("username", "password"), [("chat", "wrong-password"), ("someone", CREDENTIALS[1])]
)
def test_wrong_credentials_are_refused_with_scylla_s_message(
    auth_server: EmbeddedCqlServer, username: str, password: str
) -> None:
    cluster = Cluster(
        [auth_server.host],
        port=auth_server.port,
        auth_provider=PlainTextAuthProvider(username, password),
    )
    try:
        with pytest.raises(NoHostAvailable) as failure:
            cluster.connect()
        (error,) = failure.value.errors.values()
        assert isinstance(error, AuthenticationFailed)
        assert "Username and/or password are incorrect" in str(error)
    finally:
        cluster.shutdown()


def test_a_client_without_credentials_is_told_authentication_is_required(
    auth_server: EmbeddedCqlServer,
) -> None:
    cluster = Cluster([auth_server.host], port=auth_server.port)
    try:
        with pytest.raises(NoHostAvailable, match="requires authentication"):
            cluster.connect()
    finally:
        cluster.shutdown()


def test_no_query_is_served_before_the_client_authenticated(
    auth_server: EmbeddedCqlServer,
) -> None:
    with wire.WireClient(auth_server.host, auth_server.port) as client:
        challenge = client.startup()
        assert challenge.opcode == wire.OP_AUTHENTICATE
        assert b"org.apache.cassandra.auth.PasswordAuthenticator" in challenge.body
        refused = client.request(wire.OP_QUERY, wire.query_body("SELECT * FROM system.local"))
        assert refused.error_code == 0x000A
        assert "AUTH_RESPONSE" in refused.error_message
        token = b"\x00" + CREDENTIALS[0].encode() + b"\x00" + CREDENTIALS[1].encode()
        success = client.request(wire.OP_AUTH_RESPONSE, struct.pack(">i", len(token)) + token)
        assert success.opcode == wire.OP_AUTH_SUCCESS
        answer = client.request(wire.OP_QUERY, wire.query_body("SELECT * FROM system.local"))
        assert answer.opcode == wire.OP_RESULT
