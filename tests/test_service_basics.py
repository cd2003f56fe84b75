"""The service shell: probes, OpenAPI, problem+json for unknown routes, token checks."""

from __future__ import annotations

from tests.api_client import Api


async def test_healthz_answers_ok(api: Api) -> None:
    response = await api.http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_postgres_and_cql_reachable(api: Api) -> None:
    response = await api.http.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"postgres": "ok", "cql": "ok"}


async def test_unknown_route_is_problem_json_404(api: Api) -> None:
    response = await api.http.get("/v1/no-such-thing")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"


async def test_openapi_document_is_3_1(api: Api) -> None:
    response = await api.http.get("/v1/openapi.json")
    assert response.status_code == 200
    assert response.json()["openapi"] == "3.1.0"
