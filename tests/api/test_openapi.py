"""The OpenAPI document matches the routes the app really serves, and is valid OpenAPI 3.1."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from openapi_spec_validator import validate
from starlette.routing import Mount, Route, WebSocketRoute

from chat.api.routes import build_api
from chat.app import create_app
from chat.config import Settings
from chat.gateway.runtime import PATH as WS_PATH
from tests.api_client import Api

_CONVERTOR = re.compile(r"\{([a-z_]+):[a-z]+\}")
_DOCUMENTS = {"/v1/openapi.json", "/v1/asyncapi.json"}
"""Built from declarations in memory: no dependency that could make them answer 503."""


@pytest.fixture(scope="module")
async def document(api: Api) -> dict[str, Any]:
    response = await api.http.get("/v1/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


def served_operations(settings: Settings) -> set[tuple[str, str]]:
    """(method, OpenAPI path) of every route the Starlette app serves (HEAD is implied).

    The WebSocket endpoint is not a REST operation: docs/protocol.md describes it, and over
    plain HTTP it only answers 426 (GET) or 405. Neither are the console's static files.
    """
    served = set()
    for route in create_app(settings).routes:
        if isinstance(route, WebSocketRoute) or getattr(route, "path", None) == WS_PATH:
            continue
        if isinstance(route, Mount):
            continue  # the web console's static files: pages, not REST operations
        assert isinstance(route, Route), f"unexpected route type {route!r}"
        path = _CONVERTOR.sub(lambda m: "{" + m.group(1) + "}", route.path)
        for method in route.methods or ():
            if method != "HEAD":
                served.add((method.lower(), path))
    return served


def documented_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for path, item in document["paths"].items() for method in item}


def test_every_served_route_is_documented_with_its_method(
    document: dict[str, Any], settings: Settings
) -> None:
    missing = served_operations(settings) - documented_operations(document)
    assert not missing, f"served but not in /v1/openapi.json: {sorted(missing)}"


def test_every_documented_operation_is_served(document: dict[str, Any], settings: Settings) -> None:
    extra = documented_operations(document) - served_operations(settings)
    assert not extra, f"documented but not served: {sorted(extra)}"


def test_every_api_operation_has_a_unique_operation_id(document: dict[str, Any]) -> None:
    ids = [
        op["operationId"]
        for item in document["paths"].values()
        for op in item.values()
        if "operationId" in op
    ]
    assert len(ids) == len(set(ids))
    assert {op.operation_id for op in build_api().operations} <= set(ids)


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    validate(document)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_every_ref_resolves(document: dict[str, Any]) -> None:
    refs = set(_refs(document))
    assert refs, "the document should reference its component schemas"
    for ref in refs:
        assert ref.startswith("#/"), ref
        node: Any = document
        for part in ref[2:].split("/"):
            assert isinstance(node, dict), f"dangling $ref {ref}"
            assert part in node, f"dangling $ref {ref}"
            node = node[part]


def test_authenticated_operations_document_401_and_body_operations_422(
    document: dict[str, Any],
) -> None:
    for op in build_api().operations:
        spec = document["paths"][op.openapi_path][op.method.lower()]
        if op.auth:
            assert "401" in spec["responses"], op.operation_id
            assert spec["security"] == [{"bearer": []}]
        if op.body is not None:
            assert "422" in spec["responses"], op.operation_id
            assert "requestBody" in spec


def test_every_operation_declares_rate_limits_and_outages_as_problems(
    document: dict[str, Any],
) -> None:
    for path, item in document["paths"].items():
        for method, spec in item.items():
            for code in (
                ("429", "503") if path.startswith("/v1/") and path not in _DOCUMENTS else ("429",)
            ):
                response = spec["responses"][code]
                assert response["content"] == {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                }, (method, path, code)
            if "401" in spec["responses"]:
                assert spec["responses"]["401"]["headers"]["WWW-Authenticate"]["required"]


def test_the_websocket_endpoint_is_not_in_the_rest_document(document: dict[str, Any]) -> None:
    assert WS_PATH not in document["paths"]
    assert "docs/protocol.md" in document["info"]["description"]


def test_fields_that_cannot_be_cleared_are_not_nullable_and_claim_no_null_default(
    document: dict[str, Any],
) -> None:
    schemas = document["components"]["schemas"]
    not_null = {
        "UpdateEvent": ["title", "start_time", "end_time"],
        "UpdateSlot": ["service_type", "title", "start_time", "duration_minutes", "currency"],
        "UpdateProfile": ["phone", "name", "interests"],
    }
    for model, fields in not_null.items():
        for name in fields:
            prop = schemas[model]["properties"][name]
            assert "null" not in str(prop), (model, name, prop)
            assert "default" not in prop, (model, name)
    assert schemas["UpdateSlot"]["minProperties"] == 1
    # Fields that may be cleared still say so.
    assert {"type": "null"} in schemas["UpdateEvent"]["properties"]["location"]["anyOf"]


def test_rules_beyond_the_schema_are_listed_in_the_description_and_x_rules(
    document: dict[str, Any],
) -> None:
    create_event = document["paths"]["/v1/events"]["post"]
    fields = [rule["fields"] for rule in create_event["x-rules"]]
    assert ["start_time", "end_time"] in fields
    assert "end_time is after start_time" in create_event["description"]
    for path, method in [("/v1/events", "get"), ("/v1/slots", "get")]:
        spec = document["paths"][path][method]
        cursor = next(p for p in spec["parameters"] if p["name"] == "cursor")
        assert cursor["schema"]["pattern"] == "^[A-Za-z0-9_-]+$"
        assert "anyOf" not in cursor["schema"]
        assert ["cursor"] in [r["fields"] for r in spec["x-rules"]]


def test_links_lead_from_created_events_slots_and_payments_to_what_uses_their_ids(
    document: dict[str, Any],
) -> None:
    def links(path: str, method: str, status: str) -> dict[str, Any]:
        found: dict[str, Any] = document["paths"][path][method]["responses"][status]["links"]
        return found

    assert links("/v1/events", "post", "201")["get_event"]["parameters"] == {
        "path.event_id": "$response.body#/id"
    }
    assert links("/v1/slots", "post", "201")["book_slot"]["parameters"] == {
        "path.slot_id": "$response.body#/id"
    }
    assert links("/v1/payments", "post", "201")["change_payment_status"]["parameters"] == {
        "path.payment_id": "$response.body#/id"
    }
    operation_ids = {
        spec["operationId"] for item in document["paths"].values() for spec in item.values()
    }
    for item in document["paths"].values():
        for spec in item.values():
            for response in spec["responses"].values():
                for link in response.get("links", {}).values():
                    assert link["operationId"] in operation_ids
