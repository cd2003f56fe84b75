"""An external contract fuzzer finds nothing: Schemathesis, every phase, against a live server.

Schemathesis reads ``/v1/openapi.json`` from a real uvicorn server and runs its examples,
coverage, fuzzing and stateful phases with a fixed seed and a bounded number of cases, with
every check it has; the run fails on anything it reports. The stateful phase follows the
document's links: it must create an event, a slot and a payment and go on using their ids.

Three things are supplied from outside the document, as a tester would: a BUSINESS user's token
(only an operator grants that role), future times for slot starts (a slot must start in the
future, a rule of the clock that JSON Schema cannot state; without them nearly every generated
slot is refused and the slot links are never reached), and an event of that user's with a
second participant for payments (a payment needs an event both sides take part in; reaching
one only through three linked steps made the payment links a matter of luck). Schema-valid
requests may be refused only for the rules the document lists in ``x-rules`` (see
``checks.py``).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from chat.app import create_app
from chat.config import Settings
from tests.api.builders import create_event
from tests.api_client import Api
from tests.servers import run_server

REPO = Path(__file__).resolve().parents[3]
SEED = 20261202
MAX_EXAMPLES = 25
RUN_TIMEOUT_S = 300

# The contract run sends thousands of requests as one user from one address: no REST rate
# limit may cut it short (0 turns a quota off). Only settings this build has are applied.
GENEROUS_LIMITS = {"rest_address_quota": 0, "rest_user_quota": 0, "rest_signup_quota": 0}

# Each must be taken at least once: a created resource whose id a later request used.
REQUIRED_TRANSITIONS = (
    "POST /v1/events -> [201]",
    "POST /v1/slots -> [201]",
    "POST /v1/payments -> [201]",
)
CREATED_BY = {
    "events": "SELECT count(*) FROM events WHERE creator_id = $1",
    "slots": "SELECT count(*) FROM open_slots WHERE business_user_id = $1",
    "payments": "SELECT count(*) FROM payments WHERE payer_id = $1",
}


@pytest.fixture(scope="module")
async def contract_url(settings: Settings) -> AsyncIterator[str]:
    update = {k: v for k, v in GENEROUS_LIMITS.items() if k in Settings.model_fields}
    async with run_server(create_app(settings.model_copy(update=update))) as url:
        yield url


def _future_times() -> list[str]:
    now = datetime.now(UTC)
    return [
        (now + timedelta(days=days, minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for days in (1, 2, 7, 90)
        for minutes in (0, 45)
    ]


def _config(path: Path, event_id: int, receiver_id: int) -> Path:
    times = json.dumps(_future_times())
    binding = '{ "body.start_time" = { dictionary = "future", probability = 0.7 } }'
    payment = (
        '{ "body.event_id" = { dictionary = "event", probability = 0.7 },'
        ' "body.receiver_id" = { dictionary = "receiver", probability = 0.7 } }'
    )
    path.write_text(
        f"""
seed = {SEED}
workers = 1

[generation]
max-examples = {MAX_EXAMPLES}

[checks.positive_data_acceptance]
enabled = false

[phases.stateful]
max-steps = 30

[phases.stateful.generation]
max-examples = 300

[dictionaries.future]
values = {times}

[dictionaries.event]
values = [{event_id}]

[dictionaries.receiver]
values = [{receiver_id}]

[[operations]]
include-operation-id = "create_slot"
parameters = {binding}

[[operations]]
include-operation-id = "update_slot"
parameters = {binding}

[[operations]]
include-operation-id = "create_payment"
parameters = {payment}
"""
    )
    return path


async def _schemathesis(
    url: str, token: str, workdir: Path, event_id: int, receiver_id: int
) -> tuple[int, str]:
    st = Path(sys.executable).parent / "st"
    process = await asyncio.create_subprocess_exec(
        str(st),
        "--config-file",
        str(_config(workdir / "schemathesis.toml", event_id, receiver_id)),
        "run",
        f"{url}/v1/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        "all",
        "--exclude-checks",
        "positive_data_acceptance",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--report",
        "json,ndjson",
        "--report-dir",
        str(workdir),
        "--no-color",
        cwd=REPO,
        env={
            **os.environ,
            "SCHEMATHESIS_HOOKS": "tests.api.contract.checks",
            "PYTHONPATH": str(REPO),
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT_S)
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


def _report(workdir: Path, kind: str) -> Path:
    [path] = workdir.glob(f"{kind}-*.{kind}")
    return path


def _transitions(ndjson: Path) -> list[str]:
    found = []
    for line in ndjson.read_text().splitlines():
        event: dict[str, Any] = json.loads(line)
        stack = [event]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                transition = node.get("transition")
                if isinstance(transition, dict) and isinstance(transition.get("id"), str):
                    found.append(transition["id"])
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
    return found


async def test_schemathesis_finds_nothing_in_any_phase_and_follows_the_links(
    api: Api, contract_url: str, tmp_path: Path
) -> None:
    business = await api.create_user(role="BUSINESS")
    token = api.tokens.mint(business["id"], ttl_seconds=3600)
    receiver = await api.create_user()
    event = await create_event(api, business["id"], receiver["id"])

    code, output = await _schemathesis(contract_url, token, tmp_path, event["id"], receiver["id"])
    report = json.loads(_report(tmp_path, "json").read_text())
    assert code == 0, output[-20_000:]
    assert report["failures"] == [], output[-20_000:]
    assert report["errors"] == [], output[-20_000:]
    assert {name: phase["status"] for name, phase in report["phases"].items()} == {
        "examples": "success",
        "coverage": "success",
        "fuzzing": "success",
        "stateful": "success",
    }
    assert report["operations"]["tested"] == report["operations"]["total"]

    for what, query in CREATED_BY.items():
        created = await api.operator(asyncpg.Connection.fetchval, query, business["id"])
        assert created > 0, f"the run created no {what}"
    transitions = _transitions(_report(tmp_path, "ndjson"))
    for source in REQUIRED_TRANSITIONS:
        assert any(t.startswith(source) for t in transitions), f"no link followed from {source}"
