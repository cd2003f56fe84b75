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
from tests.conftest import Api

_CONVERTOR = re.compile(r"\{([a-z_]+):[a-z]+\}")


@pytest.fixture(scope="module")
async def document(api: Api) -> dict[str, Any]:
    response = await api.http.get("/v1/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


def served_operations(settings: Settings) -> set[tuple[str, str]]:
    """(method, OpenAPI path) of every route the Starlette app serves (HEAD is implied)."""
    served = set()
    for route in create_app(settings).routes:
        if isinstance(route, WebSocketRoute):
            # A WebSocket endpoint is an HTTP GET with an Upgrade; documented as such.
            served.add(("get", route.path))
            continue
        if isinstance(route, Mount):
            # A mount serves static files below its path.
            served.add(("get", route.path + "/{path}"))
            continue
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
    assert len(ids) == len(set(ids)) == len(build_api().operations)


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
