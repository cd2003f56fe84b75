"""The CQL TLS and password settings reach the driver. TLS: a real handshake in front of the
embedded CQL server (a TLS-terminating proxy, since the embedded server speaks plain TCP), with
the node's certificate, its host name and the client certificate each checked, on both
reactors. Password: against an embedded server that demands one (PasswordAuthenticator, SASL
PLAIN), the configured credentials get in and wrong or missing ones are refused."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import NoHostAvailable
from pydantic import SecretStr

from chat.config import Settings
from chat.embedded.cql.process import EmbeddedCqlServer
from chat.store.driver.session import CqlStore, open_cql
from tests.tls import Authority, Issued, make_authority, server_context, tls_proxy

REACTORS = ["app-loop", "libev"]


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return make_authority(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def node_cert(ca: Authority) -> Issued:
    return ca.issue("cql-node", dns=["localhost"], ips=["127.0.0.1"])


@contextlib.asynccontextmanager
async def tls_store(
    settings: Settings,
    cql_server: EmbeddedCqlServer,
    served_cert: Issued,
    client_ca: Path | None = None,
    **tls: Any,
) -> AsyncIterator[CqlStore]:
    """A store connected through TLS to the session's CQL server, with these CQL settings."""
    context = server_context(served_cert, client_ca)
    async with tls_proxy((cql_server.host, cql_server.port), context) as port:
        configured = settings.model_copy(
            update={"cql_contact_points": "127.0.0.1", "cql_port": port, **tls}
        )
        async with open_cql(configured) as store:
            yield store


@pytest.mark.parametrize("reactor", REACTORS)
async def test_the_store_reaches_scylla_over_tls_verifying_the_node(
    settings: Settings,
    cql_server: EmbeddedCqlServer,
    ca: Authority,
    node_cert: Issued,
    reactor: str,
) -> None:
    async with tls_store(
        settings, cql_server, node_cert, cql_reactor=reactor, cql_tls_ca_file=ca.cert
    ) as store:
        await store.ping()
        [connection] = [c for pool in store.session.get_pools() for c in pool.get_connections()][:1]
        assert connection.ssl_context is not None


@pytest.mark.parametrize("reactor", REACTORS)
async def test_a_node_certificate_from_another_ca_is_refused(
    settings: Settings, cql_server: EmbeddedCqlServer, ca: Authority, tmp_path: Path, reactor: str
) -> None:
    stranger = make_authority(tmp_path, "stranger-ca").issue("cql-node", ips=["127.0.0.1"])
    with pytest.raises(NoHostAvailable, match="CERTIFICATE_VERIFY_FAILED"):
        async with tls_store(
            settings, cql_server, stranger, cql_reactor=reactor, cql_tls_ca_file=ca.cert
        ):
            pass


@pytest.mark.parametrize("reactor", REACTORS)
async def test_a_node_certificate_for_another_name_is_refused_unless_names_are_not_checked(
    settings: Settings, cql_server: EmbeddedCqlServer, ca: Authority, reactor: str
) -> None:
    elsewhere = ca.issue("cql-elsewhere", dns=["db.internal.example"])
    with pytest.raises(NoHostAvailable, match="IP address mismatch"):
        async with tls_store(
            settings, cql_server, elsewhere, cql_reactor=reactor, cql_tls_ca_file=ca.cert
        ):
            pass
    async with tls_store(
        settings,
        cql_server,
        elsewhere,
        cql_reactor=reactor,
        cql_tls_ca_file=ca.cert,
        cql_tls_verify_hostname=False,
    ) as store:
        await store.ping()


@pytest.mark.parametrize("reactor", REACTORS)
async def test_a_node_that_demands_a_client_certificate_gets_the_configured_one(
    settings: Settings,
    cql_server: EmbeddedCqlServer,
    ca: Authority,
    node_cert: Issued,
    reactor: str,
) -> None:
    gateway = ca.issue("gateway", client=True)
    with pytest.raises(NoHostAvailable):
        async with tls_store(
            settings, cql_server, node_cert, ca.cert, cql_reactor=reactor, cql_tls_ca_file=ca.cert
        ):
            pass
    async with tls_store(
        settings,
        cql_server,
        node_cert,
        ca.cert,
        cql_reactor=reactor,
        cql_tls_ca_file=ca.cert,
        cql_tls_cert_file=gateway.cert,
        cql_tls_key_file=gateway.key,
    ) as store:
        await store.ping()


def test_an_unreadable_ca_file_is_a_configuration_error_naming_the_setting(
    settings: Settings, tmp_path: Path
) -> None:
    from chat.store.driver.session import cql_ssl_context

    missing = settings.model_copy(update={"cql_tls_ca_file": tmp_path / "absent.pem"})
    with pytest.raises(ValueError, match="CHAT_CQL_TLS_CA_FILE: cannot load"):
        cql_ssl_context(missing)


async def test_the_cql_credentials_reach_the_driver_auth_provider(settings: Settings) -> None:
    """The provider the driver answers an AUTHENTICATE with (the embedded server here asks for
    none, so the connection also shows that configured credentials do not get in the way)."""
    configured = settings.model_copy(
        update={"cql_username": "chat", "cql_password": SecretStr("s3cret-for-the-test")}
    )
    async with open_cql(configured) as store:
        await store.ping()
        provider = store.cluster.auth_provider
        assert isinstance(provider, PlainTextAuthProvider)
        assert (provider.username, provider.password) == ("chat", "s3cret-for-the-test")


@pytest.fixture(scope="module")
async def guarded_server() -> AsyncIterator[EmbeddedCqlServer]:
    """An embedded CQL server that accepts only user ``chat`` with its password."""
    async with EmbeddedCqlServer(credentials=("chat", "s3cret-for-the-test")) as server:
        yield server


def _at(settings: Settings, server: EmbeddedCqlServer, **update: Any) -> Settings:
    return settings.model_copy(
        update={"cql_contact_points": server.host, "cql_port": server.port, **update}
    )


@pytest.mark.parametrize("reactor", REACTORS)
async def test_the_configured_cql_credentials_get_the_store_in(
    settings: Settings, guarded_server: EmbeddedCqlServer, reactor: str
) -> None:
    configured = _at(
        settings,
        guarded_server,
        cql_username="chat",
        cql_password=SecretStr("s3cret-for-the-test"),
        cql_reactor=reactor,
    )
    async with open_cql(configured) as store:
        await store.ping()


@pytest.mark.parametrize(
    "credentials",
    [{"cql_username": "chat", "cql_password": SecretStr("wrong-password")}, {}],
    ids=["wrong password", "no credentials"],
)
async def test_wrong_or_missing_cql_credentials_are_refused(
    settings: Settings, guarded_server: EmbeddedCqlServer, credentials: dict[str, Any]
) -> None:
    configured = _at(settings, guarded_server, **credentials)
    with pytest.raises(NoHostAvailable):
        async with open_cql(configured):
            pass
