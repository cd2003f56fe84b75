"""Client-side TLS for the connections this service opens (ScyllaDB, NATS).

One place builds the :class:`ssl.SSLContext` so every dependency gets the same floor: the peer's
certificate chain is always verified (against a given CA bundle, or the system's), TLS 1.2 at
least, the host name checked unless an operator turns that off for a cluster addressed by IPs
its certificates do not name, and a client certificate when the server asks for one.
"""

from __future__ import annotations

import ssl
from pathlib import Path


def client_ssl_context(
    setting: str,
    *,
    ca_file: Path | None,
    cert_file: Path | None,
    key_file: Path | None,
    verify_hostname: bool = True,
) -> ssl.SSLContext:
    """A verifying client context; a file that cannot be loaded is a ValueError naming the
    ``setting`` family it came from (``CHAT_CQL_TLS``, ``CHAT_NATS_TLS``)."""
    try:
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(ca_file) if ca_file else None
        )
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"{setting}_CA_FILE: cannot load {ca_file}: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = verify_hostname
    if cert_file is not None:
        try:
            context.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(
                f"{setting}_CERT_FILE/{setting}_KEY_FILE: cannot load {cert_file}: {exc}"
            ) from None
    return context
