"""How a memory budget is written (``--memory-budget``, ``CHAT_CQL_EMBEDDED_MEMORY_BUDGET``):
bytes, a size with a unit, or a share of the machine's memory; anything else is refused with
a message that says what is accepted."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from chat.config import Settings
from chat.embedded.cql.budget import BudgetError, machine_memory, parse_budget

GIB = 1 << 30


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("536870912", 536_870_912),
        ("512MiB", 512 << 20),
        ("512 MiB", 512 << 20),
        ("2GB", 2_000_000_000),
        ("1.5GiB", 3 * GIB // 2),
        ("64k", 64_000),
        ("25%", GIB),
        ("100%", 4 * GIB),
    ],
)
def test_a_budget_is_read_as_bytes_a_size_or_a_share_of_the_memory(
    text: str, expected: int
) -> None:
    assert parse_budget(text, total=4 * GIB) == expected


def test_a_share_is_of_the_memory_this_process_may_use() -> None:
    assert parse_budget("50%") == machine_memory() // 2
    assert machine_memory() > 0


@pytest.mark.parametrize(
    "text", ["", "lots", "0", "-1GB", "12 parsecs", "0%", "101%", "nan", "inf", "1e999", "nan%"]
)
def test_a_budget_that_cannot_be_read_is_refused_with_what_is_accepted(text: str) -> None:
    with pytest.raises(BudgetError):
        parse_budget(text, total=4 * GIB)


def test_the_setting_is_checked_when_the_settings_are_read() -> None:
    with pytest.raises(ValidationError, match="cql_embedded_memory_budget"):
        Settings(cql_embedded_memory_budget="lots")
    assert Settings(cql_embedded_memory_budget="2GB").cql_embedded_memory_budget == "2GB"
