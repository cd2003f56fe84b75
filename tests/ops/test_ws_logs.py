"""The WebSocket path logs at debug level without tokens or message texts, with its ids.

A real ``chat serve`` process at ``CHAT_LOG_LEVEL=debug`` with JSON logs: a client
authenticates with a ``hello`` frame (the token travels inside a frame, not only in a header)
and sends a message with a distinctive text; the captured log must carry neither, and the
gateway's lines must carry the connection id.
"""

from __future__ import annotations

import secrets
import signal
from pathlib import Path

import orjson

from chat.config import Settings
from tests.api_client import Api
from tests.gateway.live import client, users_and_event
from tests.ops.processes import serve_process


async def test_debug_logs_of_a_websocket_session_hold_ids_but_no_token_or_text(
    settings: Settings, api: Api, tmp_path: Path
) -> None:
    (ada,), event_id = await users_and_event(api, 1)
    secret_text = f"confidential-{secrets.token_hex(8)}"
    async with serve_process(
        settings, tmp_path, CHAT_LOG_LEVEL="debug", CHAT_LOG_FORMAT="json"
    ) as served:
        async with client(served.url, api, ada, hello=True) as ws:
            await ws.subscribe(event_id)
            ack = await ws.send_message(event_id, secret_text)
            assert ack["type"] == "ack"
            token = api.tokens.mint(ada)
            await ws.request(type="hello", token=token)  # a second hello: an error, logged?
        served.process.send_signal(signal.SIGTERM)
        assert await served.wait_exit(30) == 0

    text = served.log_text()
    assert secret_text not in text
    assert token.split(".")[2] not in text  # no token signature, whatever the framing
    records = [orjson.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert records, text[-2000:]
    ws_records = [r for r in records if r.get("connection_id")]
    assert ws_records, "the gateway's log lines carry connection_id"
    assert all(r["connection_id"].startswith("ws-") for r in ws_records)
    assert any(r.get("request_id") for r in records), "HTTP lines carry request_id"
    assert any(r["level"] == "debug" for r in records), "the process really logged at debug"
