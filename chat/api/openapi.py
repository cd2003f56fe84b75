"""The OpenAPI 3.1 document, built from the declared operations and their pydantic models.

It says exactly what the API accepts (request schemas as strict as the validation behind them;
the rules JSON Schema cannot state listed per operation in the description and ``x-rules``),
every status an operation can answer with its problem+json body, and the links between
operations. The WebSocket gateway is not a REST operation and is not described here: its
contract is ``docs/protocol.md``.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema

from chat import __version__
from chat.api.endpoint import Operation
from chat.api.fields import MAX_ID, UUID_PATTERN, without_null
from chat.api.links import links_for

_REF = "#/components/schemas/{model}"
PROBLEM_REF = "#/components/schemas/Problem"

_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}

_ERROR_TEXT = {
    400: "Malformed request (the body is not JSON)",
    401: "Missing, expired or invalid access token, or a deactivated account",
    403: "Not allowed",
    404: "Not found (or not visible to the caller)",
    409: "Conflict with the current state",
    413: "Body too large",
    415: "Body is not application/json",
    422: "Invalid input",
    429: "Too many requests; retry after the time in Retry-After",
    503: "A dependency is unavailable; retry shortly",
}

_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "required": True,
            "description": "The Bearer challenge.",
            "schema": {"type": "string"},
        }
    },
    429: {
        "Retry-After": {
            "required": True,
            "description": "Seconds to wait before retrying.",
            "schema": {"type": "integer", "minimum": 0},
        }
    },
    503: {
        "Retry-After": {
            "description": "Seconds to wait before retrying.",
            "schema": {"type": "integer", "minimum": 0},
        }
    },
}

# Any request may meet the rate limit or a dependency outage.
_ALWAYS = frozenset({429, 503})

_PATH_SCHEMAS: dict[str, dict[str, Any]] = {
    # The route only matches 1-18 digits without a leading zero (chat.api.convertors).
    "id": {"type": "integer", "minimum": 1, "maximum": 10**18 - 1},
    "uuid": {"type": "string", "format": "uuid", "pattern": UUID_PATTERN},
}
assert _PATH_SCHEMAS["id"]["maximum"] < MAX_ID

DESCRIPTION = """Organizer REST API of timingle-chat. Errors are RFC 9457 application/problem+json.

Numbers: a JSON number without a fractional part is an integer however it is written (`62`,
`62.0` and `6.2e1` are the same id), as in JSON Schema; strings and booleans are never numbers.
Timestamps are RFC 3339 strings with an offset. Money amounts are decimal strings (or numbers)
with at most two decimals. The WebSocket chat gateway (`GET /v1/ws` with an Upgrade) is
described in docs/protocol.md, not here."""


class _StrictGenerator(GenerateJsonSchema):
    """Pydantic's generator, but a field that may be left out and is never null does not claim
    ``default: null`` (a value its own schema refuses)."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        json_schema = super().default_schema(schema)
        if json_schema.get("default", ...) is None and not _nullable(json_schema):
            del json_schema["default"]
        return json_schema


def _nullable(json_schema: JsonSchemaValue) -> bool:
    branches: list[Any] = json_schema.get("anyOf") or json_schema.get("oneOf") or []
    return json_schema.get("type") == "null" or {"type": "null"} in branches


def build_openapi(operations: list[Operation], extra_paths: dict[str, Any]) -> dict[str, Any]:
    bodies = {op.body for op in operations if op.body is not None}
    responses = {op.response for op in operations if op.response is not None} - bodies
    _, schema_defs = models_json_schema(
        [(m, "validation") for m in sorted(bodies, key=lambda m: m.__name__)]
        + [(m, "serialization") for m in sorted(responses, key=lambda m: m.__name__)],
        ref_template=_REF,
        schema_generator=_StrictGenerator,
    )
    schemas: dict[str, Any] = dict(schema_defs.get("$defs", {}))
    schemas["Problem"] = _PROBLEM_SCHEMA

    paths: dict[str, Any] = dict(extra_paths)
    for op in operations:
        paths.setdefault(op.openapi_path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "timingle-chat API", "version": __version__, "description": DESCRIPTION},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def problem_response(code: int, description: str | None = None) -> dict[str, Any]:
    """A response object for an error status: problem+json, with its headers."""
    spec: dict[str, Any] = {
        "description": description or _ERROR_TEXT.get(code, "Error"),
        "content": {"application/problem+json": {"schema": {"$ref": PROBLEM_REF}}},
    }
    if code in _HEADERS:
        spec["headers"] = _HEADERS[code]
    return spec


def error_codes(op: Operation) -> set[int]:
    """Every error status the operation can answer."""
    codes = set(op.errors) | _ALWAYS
    if op.body is not None:
        codes |= {400, 413, 415, 422}
    if op.query is not None or op.rules:
        codes.add(422)
    if op.path_params:
        codes.add(404)  # no such resource, or an id the route does not match
    if op.auth:
        codes.add(401)
    return codes


def _description(op: Operation) -> str:
    doc = (op.handler.__doc__ or "").strip()
    if not op.rules:
        return doc
    rules = "\n".join(f"- {', '.join(r.fields)}: {r.text}" for r in op.rules)
    return (
        f"{doc}\n\nRules beyond this schema (breaking one is a 422 naming the field):\n{rules}"
    ).strip()


def _operation(op: Operation) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": _PATH_SCHEMAS[kind]}
            for name, kind in op.path_param_types.items()
        ],
        "responses": {},
    }
    description = _description(op)
    if description:
        spec["description"] = description
    if op.rules:
        spec["x-rules"] = [{"fields": list(r.fields), "rule": r.text} for r in op.rules]
    if op.query is not None:
        query_schema = op.query.model_json_schema(schema_generator=_StrictGenerator)
        required = query_schema.get("required", [])
        for name, prop in query_schema["properties"].items():
            # A query string cannot say null: an absent parameter is the only "none".
            spec["parameters"].append(
                {
                    "name": name,
                    "in": "query",
                    "required": name in required,
                    "schema": without_null(prop),
                }
            )
    if op.body is not None:
        spec["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": _REF.format(model=op.body.__name__)}}
            },
        }
    success: dict[str, Any] = {"description": op.summary}
    if op.response is not None:
        success["content"] = {
            "application/json": {"schema": {"$ref": _REF.format(model=op.response.__name__)}}
        }
    links = links_for(op.operation_id)
    if links:
        success["links"] = links
    spec["responses"]["204" if op.response is None and op.status == 200 else str(op.status)] = (
        success
    )
    for code, text in op.also:
        spec["responses"][str(code)] = {**success, "description": text}
    if op.auth:
        spec["security"] = [{"bearer": []}]
    for code in sorted(error_codes(op)):
        spec["responses"][str(code)] = problem_response(code)
    return spec
