"""The `chat` command as a user runs it: a real subprocess against the real database."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from chat.auth import TokenService
from chat.config import Settings
from chat.store.pg import migrations
from tests.api.builders import in_hours
from tests.api_client import TEST_JWT_SECRET, Api


async def _chat(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chat.cli",
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_token_command_mints_a_token_the_service_accepts(tmp_path: Path) -> None:
    code, out, err = await _chat(
        "token", "42", env={"CHAT_JWT_SECRET": TEST_JWT_SECRET, "CHAT_DATA_DIR": str(tmp_path)}
    )
    assert code == 0, err
    settings = Settings(jwt_secret=TEST_JWT_SECRET, data_dir=tmp_path)
    assert TokenService.from_settings(settings).verify(out.strip()) == 42


async def test_token_without_a_secret_uses_one_generated_in_the_data_dir(tmp_path: Path) -> None:
    env = {"CHAT_DATA_DIR": str(tmp_path)}
    first = await _chat("token", "7", env=env)
    second = await _chat("token", "7", env=env)
    assert first[0] == second[0] == 0
    secret = (tmp_path / "jwt-secret").read_text().strip()
    verifier = TokenService.from_settings(Settings(jwt_secret=secret, data_dir=tmp_path))
    assert verifier.verify(first[1].strip()) == verifier.verify(second[1].strip()) == 7


async def test_migrate_status_lists_every_migration_as_applied(pg_dsn: str, base_url: str) -> None:
    # base_url: the test app has started, so its start-up migrations have run on this database.
    code, out, err = await _chat("migrate", "status", env={"CHAT_PG_DSN": pg_dsn})
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == len(migrations.discover())
    assert all("pending" not in line for line in lines)


async def test_user_set_role_makes_a_business_that_may_offer_slots(api: Api, pg_dsn: str) -> None:
    user = await api.create_user()
    slot = {"service_type": "haircut", "title": "Cut", "start_time": in_hours(24)}
    before = await api.http.post("/v1/slots", json=slot, headers=api.auth(user["id"]))
    assert before.status_code == 403

    code, out, err = await _chat(
        "user", "set-role", str(user["id"]), "BUSINESS", env={"CHAT_PG_DSN": pg_dsn}
    )
    assert code == 0, err
    assert out.startswith(f"user {user['id']} ")
    assert "role BUSINESS" in out
    after = await api.http.post("/v1/slots", json=slot, headers=api.auth(user["id"]))
    assert after.status_code == 201, after.text
    me = await api.http.get("/v1/users/me", headers=api.auth(user["id"]))
    assert me.json()["role"] == "BUSINESS"


async def test_user_deactivate_refuses_the_users_tokens_and_activate_restores_them(
    api: Api, pg_dsn: str
) -> None:
    user = await api.create_user()
    env = {"CHAT_PG_DSN": pg_dsn}
    code, out, err = await _chat("user", "deactivate", str(user["id"]), env=env)
    assert code == 0, err
    assert "deactivated" in out
    me = await api.http.get("/v1/users/me", headers=api.auth(user["id"]))
    assert me.status_code == 401
    code, out, err = await _chat("user", "activate", str(user["id"]), env=env)
    assert code == 0, err
    me = await api.http.get("/v1/users/me", headers=api.auth(user["id"]))
    assert me.status_code == 200


async def test_user_commands_on_an_unknown_user_fail_and_say_so(pg_dsn: str) -> None:
    code, _, err = await _chat(
        "user", "set-role", str(2**62), "BUSINESS", env={"CHAT_PG_DSN": pg_dsn}
    )
    assert code == 1
    assert f"no user {2**62}" in err


async def test_user_set_role_refuses_a_role_that_does_not_exist(pg_dsn: str) -> None:
    code, _, err = await _chat("user", "set-role", "1", "ADMIN", env={"CHAT_PG_DSN": pg_dsn})
    assert code == 2
    assert "invalid choice" in err
