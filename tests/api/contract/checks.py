"""Schemathesis hooks for the contract run (loaded through ``SCHEMATHESIS_HOOKS``).

The built-in ``positive_data_acceptance`` check fails on any 422 for a request the schema
allows. Some input rules cannot be stated in JSON Schema (end after start, a cursor this API
issued, a receiver who takes part in the event); the document lists them per operation in
``x-rules`` and in the description. This check is the built-in one, except that a 422 is
accepted when every field it names is covered by one of the operation's documented rules, so
any other refusal of schema-valid input still fails the run.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance


def _field_name(location: str) -> str:
    """``body/end_time`` -> ``end_time``; ``query/cursor`` -> ``cursor``."""
    parts = location.split("/")
    return parts[1] if len(parts) > 1 and parts[0] in ("body", "query") else parts[0]


def breaks_documented_rule(definition: dict[str, Any], problem: Any) -> bool:
    """Whether a 422 problem names only fields the operation's ``x-rules`` cover."""
    covered = {name for rule in definition.get("x-rules", []) for name in rule["fields"]}
    if not isinstance(problem, dict) or not covered:
        return False
    errors = problem.get("errors") or []
    fields = {_field_name(str(e.get("field", ""))) for e in errors if isinstance(e, dict)}
    return bool(fields) and fields <= covered


@schemathesis.check
def positive_data_acceptance_beyond_documented_rules(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    if response.status_code == 422:
        try:
            problem = response.json()
        except ValueError:
            problem = None
        if breaks_documented_rule(case.operation.definition.raw, problem):
            return None
    result: bool | None = positive_data_acceptance(ctx, response, case)
    return result
