"""Secrets have no default that works in production: weak or published secrets are refused,
generated ones are private to this user, and token claims are compared exactly."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from pydantic import ValidationError

from chat.auth import TokenService
from chat.config import EXAMPLE_JWT_SECRETS, Settings, private_dir_mode
from chat.errors import Unauthorized
from tests.api_client import TEST_JWT_SECRET

ROOT = Path(__file__).resolve().parents[1]
# A CHAT_JWT_SECRET value written out in a document or example file (not a ${...} reference).
_SHOWN_SECRET = re.compile(r"CHAT_JWT_SECRET[=:]\s*['\"]?([A-Za-z0-9_\-]{8,})")


def test_a_jwt_secret_shorter_than_32_bytes_is_refused_with_how_to_make_one() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(jwt_secret="x" * 31)
    assert "31 bytes; an HS256 secret needs at least 32" in str(caught.value)
    assert "secrets.token_urlsafe" in str(caught.value)
    assert Settings(jwt_secret="é" * 16).jwt_secret, "32 bytes of UTF-8 are enough"


@pytest.mark.parametrize("example", sorted(EXAMPLE_JWT_SECRETS))
def test_every_example_secret_from_the_documentation_is_refused(example: str) -> None:
    with pytest.raises(ValidationError, match="example secret from the documentation"):
        Settings(jwt_secret=example)


def test_every_secret_written_in_the_docs_or_example_files_is_one_the_service_refuses() -> None:
    files = [ROOT / "README.md", ROOT / "docker-compose.yml", *sorted((ROOT / "docs").glob("*.md"))]
    shown = {m for f in files for m in _SHOWN_SECRET.findall(f.read_text())}
    assert shown <= EXAMPLE_JWT_SECRETS, f"documented but accepted: {shown - EXAMPLE_JWT_SECRETS}"


async def test_chat_refuses_to_start_with_a_weak_secret_without_printing_it(
    tmp_path: Path,
) -> None:
    weak = "hunter2-is-my-password"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chat.cli",
        "token",
        "1",
        env={**os.environ, "CHAT_JWT_SECRET": weak, "CHAT_DATA_DIR": str(tmp_path)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 2
    assert out == b""
    assert "CHAT_JWT_SECRET: the value is 22 bytes" in err.decode()
    assert weak not in err.decode()


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 0: any mode narrower than 0666/0777 was chosen by the code, not by the umask."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("open_umask")
def test_generated_secrets_are_created_0600_in_a_0700_data_directory(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    settings = Settings(data_dir=data_dir)
    settings.secure_data_dir()
    TokenService.from_settings(settings)
    settings.resolved_oauth_key()
    assert stat.S_IMODE(data_dir.stat().st_mode) == private_dir_mode()
    for name in ("jwt-secret", "oauth-key"):
        assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600, name
    assert sorted(p.name for p in data_dir.iterdir()) == ["jwt-secret", "oauth-key"], (
        "no temporary file is left behind"
    )


def test_the_data_directory_is_0700_or_for_root_0711_so_embedded_postgres_can_traverse() -> None:
    assert private_dir_mode() == (0o711 if os.geteuid() == 0 else 0o700)


def test_a_data_directory_others_can_read_is_narrowed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data_dir.chmod(0o755)
    with caplog.at_level(logging.INFO, logger="chat.config"):
        Settings(data_dir=data_dir).secure_data_dir()
    assert stat.S_IMODE(data_dir.stat().st_mode) == private_dir_mode()
    assert f"was mode 0755; narrowed to {private_dir_mode():04o}" in caplog.text


def test_a_generated_secret_file_that_was_shortened_is_refused(tmp_path: Path) -> None:
    (tmp_path / "jwt-secret").write_text("too-short")
    with pytest.raises(ValueError, match="jwt-secret is 9 bytes"):
        TokenService.from_settings(Settings(data_dir=tmp_path))


def test_a_token_whose_issuer_is_only_part_of_the_configured_issuer_is_refused(
    tmp_path: Path,
) -> None:
    issuer = "https://auth.timingle.dev"
    service = TokenService.from_settings(
        Settings(jwt_secret=TEST_JWT_SECRET, jwt_issuer=issuer, data_dir=tmp_path)
    )
    now = int(time.time())
    claims = {"sub": "5", "iat": now, "exp": now + 60}
    assert service.verify(jwt.encode({**claims, "iss": issuer}, TEST_JWT_SECRET)) == 5
    for forged in ("auth.timingle", "https://auth.timingle.dev.evil", "", "h"):
        token = jwt.encode({**claims, "iss": forged}, TEST_JWT_SECRET)
        with pytest.raises(Unauthorized, match="issuer"):
            service.verify(token)
    with pytest.raises(Unauthorized, match="iss"):
        service.verify(jwt.encode(claims, TEST_JWT_SECRET))
