"""The OpenAPI document: well-formed 3.1, every route described, every $ref resolvable, and
the served app answers what it documents (checked here by hand, and by schemathesis when
that package is installed)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Route
from starlette.testclient import TestClient

from pilotfish.api.app import create_app
from pilotfish.api.backend import LocalBackend
from pilotfish.api.openapi import document
from tests.api.schema import problems

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v
            else:
                yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_document_is_well_formed_openapi_3_1() -> None:
    doc = document()
    assert doc["openapi"] == "3.1.0" and doc["info"]["title"] and doc["info"]["version"]
    for path, item in doc["paths"].items():
        assert path.startswith("/")
        for method, op in item.items():
            assert method in HTTP_METHODS
            assert op["responses"] and all(r["description"] for r in op["responses"].values())
            for p in op.get("parameters", []):
                assert {"name", "in", "schema"} <= set(p) and p["in"] in ("query", "path")
                if p["in"] == "path":
                    assert p["required"] is True and "{" + p["name"] + "}" in path
    for ref in _refs(doc):
        assert ref.startswith("#/components/schemas/") and _resolve(doc, ref)


def test_every_route_is_documented() -> None:
    app = create_app(_NoBackend(), static_dir=None)  # type: ignore[arg-type]
    served = {r.path for r in app.routes if isinstance(r, Route)}
    assert served == set(document()["paths"])
    assert "/api/stream" in document()["x-websocket"]


class _NoBackend:
    """Enough of a backend to build the app without serving anything."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


@pytest.fixture
def client(backend: LocalBackend) -> Iterator[TestClient]:
    with TestClient(create_app(backend, static_dir=None)) as c:
        yield c


def _schema_of(doc: dict[str, Any], path: str, status: str) -> dict[str, Any] | None:
    content = doc["paths"][path]["get"]["responses"][status].get("content", {})
    media = content.get("application/json")
    return None if media is None else media["schema"]


def test_answers_match_their_documented_schemas(client: TestClient) -> None:
    doc = document()
    for path in doc["paths"]:
        url = path.replace("{entry_id}", "n-1")
        r = client.get(url)
        assert str(r.status_code) in doc["paths"][path]["get"]["responses"], path
        schema = _schema_of(doc, path, str(r.status_code))
        if schema is not None:
            assert problems(r.json(), schema, doc) == [], path


QUERY_PARAMS = sorted(
    (path, p["name"])
    for path, item in document()["paths"].items()
    for p in item["get"].get("parameters", [])
    if p["in"] == "query"
)


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=st.sampled_from(QUERY_PARAMS), value=st.text(max_size=30))
def test_any_parameter_value_gets_a_documented_answer(
    client: TestClient, target: tuple[str, str], value: str
) -> None:
    doc = document()
    path, name = target
    r = client.get(path, params={name: value})
    responses = doc["paths"][path]["get"]["responses"]
    assert str(r.status_code) in responses and r.status_code < 500
    schema = _schema_of(doc, path, str(r.status_code))
    if schema is not None:
        assert problems(r.json(), schema, doc) == []


def test_schemathesis_finds_no_failure(backend: LocalBackend) -> None:
    import schemathesis
    from schemathesis.checks import positive_data_acceptance

    app = create_app(backend, static_dir=None)
    with TestClient(app):  # runs the lifespan
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        failures = []
        for result in schema.get_all_operations():
            operation = result.ok()

            @settings(max_examples=25, deadline=None)
            @given(case=operation.as_strategy())
            def check(case: Any) -> None:
                # A schema-valid `q` is any string, and most strings are not queries: those
                # are answered 400 by design, so acceptance of "positive" data is not checked.
                case.call_and_validate(excluded_checks=[positive_data_acceptance])

            try:
                check()
            except Exception as exc:  # collect every operation's failure
                failures.append(f"{operation.label}: {exc}")
        assert failures == []
