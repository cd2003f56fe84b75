"""The OpenAPI 3.1 document, built from the declared operations and their pydantic models."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from chat import __version__
from chat.api.endpoint import Operation

_REF = "#/components/schemas/{model}"

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
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}

_ERROR_TEXT = {
    400: "Malformed request",
    401: "Missing, expired or invalid access token",
    403: "Not allowed",
    404: "Not found (or not visible to the caller)",
    409: "Conflict with the current state",
    413: "Body too large",
    415: "Body is not JSON",
    422: "Invalid input",
    503: "A dependency is unavailable",
}


def build_openapi(operations: list[Operation], extra_paths: dict[str, Any]) -> dict[str, Any]:
    bodies = {op.body for op in operations if op.body is not None}
    responses = {op.response for op in operations if op.response is not None} - bodies
    _, schema_defs = models_json_schema(
        [(m, "validation") for m in sorted(bodies, key=lambda m: m.__name__)]
        + [(m, "serialization") for m in sorted(responses, key=lambda m: m.__name__)],
        ref_template=_REF,
    )
    schemas: dict[str, Any] = dict(schema_defs.get("$defs", {}))
    schemas["Problem"] = _PROBLEM_SCHEMA

    paths: dict[str, Any] = dict(extra_paths)
    for op in operations:
        paths.setdefault(op.openapi_path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "timingle-chat API",
            "version": __version__,
            "description": (
                "Organizer REST API of timingle-chat. Errors are application/problem+json."
            ),
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _operation(op: Operation) -> dict[str, Any]:
    doc = (op.handler.__doc__ or "").strip()
    spec: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "integer", "minimum": 1, "maximum": 999999999999999999},
            }
            for name in op.path_params
        ],
        "responses": {},
    }
    if doc:
        spec["description"] = doc
    if op.query is not None:
        for name, prop in op.query.model_json_schema()["properties"].items():
            spec["parameters"].append(
                {
                    "name": name,
                    "in": "query",
                    "required": name in op.query.model_json_schema().get("required", []),
                    "schema": prop,
                }
            )
    if op.body is not None:
        spec["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": _REF.format(model=op.body.__name__)}}
            },
        }
    if op.response is not None:
        spec["responses"][str(op.status)] = {
            "description": op.summary,
            "content": {
                "application/json": {"schema": {"$ref": _REF.format(model=op.response.__name__)}}
            },
        }
    else:
        spec["responses"]["204" if op.status == 200 else str(op.status)] = {
            "description": op.summary
        }
    codes = set(op.errors) | {422 if op.body or op.query else 400}
    if op.body:
        codes |= {400, 413, 415}
    if op.auth:
        codes.add(401)
        spec["security"] = [{"bearer": []}]
    for code in sorted(codes):
        spec["responses"][str(code)] = {
            "description": _ERROR_TEXT.get(code, "Error"),
            "content": {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            },
        }
    return spec
