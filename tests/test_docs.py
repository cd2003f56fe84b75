"""The README stays true to the code: every setting is documented, nothing documented is gone."""

from __future__ import annotations

import re
from pathlib import Path

from chat.config import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_configuration_table_lists_exactly_the_settings() -> None:
    documented = set(re.findall(r"^\| `(CHAT_[A-Z0-9_]+)` \|", README, flags=re.MULTILINE))
    declared = {f"CHAT_{name.upper()}" for name in Settings.model_fields}
    assert documented == declared


def test_readme_shows_every_test_command_ci_runs() -> None:
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    commands = [line for line in ci.splitlines() if "-m pytest" in line]
    assert len(commands) == 2  # the whole suite (the quick start's), then the browser tests
    for command in commands:
        assert f"```sh\n{command}\n```" in README
