"""How a node authenticates to NATS and encrypts the connection, from the ``CHAT_NATS_*``
settings, as keyword arguments of ``nats.connect``.

One way to authenticate at most (the settings refuse two): a user and password, a token, or a
credentials file (a user JWT and NKey seed, as ``nsc`` writes them). With any TLS setting the
connection must end up encrypted: nats-py upgrades to TLS only when the server's greeting asks
for it, so a server (or anyone on the path) that does not ask would leave it in plaintext;
:func:`is_encrypted` lets the hub refuse such a connection instead of carrying traffic on it.
"""

from __future__ import annotations

from typing import Any

from chat.config import Settings
from chat.tls import client_ssl_context


def nats_connect_options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if settings.nats_user is not None and settings.nats_password is not None:
        options["user"] = settings.nats_user
        options["password"] = settings.nats_password.get_secret_value()
    if settings.nats_token is not None:
        options["token"] = settings.nats_token.get_secret_value()
    if settings.nats_creds_file is not None:
        options["user_credentials"] = str(settings.nats_creds_file)
    if settings.nats_uses_tls:
        options["tls"] = client_ssl_context(
            "CHAT_NATS_TLS",
            ca_file=settings.nats_tls_ca_file,
            cert_file=settings.nats_tls_cert_file,
            key_file=settings.nats_tls_key_file,
        )
    return options


def is_encrypted(nc: Any) -> bool:
    """Whether the client's current connection runs over TLS.

    Reads nats-py's transport (``_transport._io_writer``, stable across nats-py 2.x, the range
    pinned in pyproject.toml): the client has no public way to say it.
    """
    writer = getattr(getattr(nc, "_transport", None), "_io_writer", None)
    return writer is not None and writer.get_extra_info("ssl_object") is not None
