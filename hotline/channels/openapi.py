"""The OpenAPI 3.1 document of the JSON API, generated from the models the handlers validate
with and answer through (`channels/api.py`): one table of operations, nothing written twice."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from hotline.channels import api

PREFIX = "/api/v1"
REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # under PREFIX
    id: str
    summary: str
    ok: tuple[int, type[BaseModel]]
    scope: str = "read"  # "read" or "write"
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()  # besides 401 and 429 (and 403 for write)
    headers: dict[str, dict[str, Any]] = field(default_factory=dict)
    links: dict[str, dict[str, Any]] = field(default_factory=dict)


CODE = {"name": "code", "in": "path", "required": True,
        "schema": {"type": "string", "minLength": 1, "maxLength": 20}}  # fmt: skip
IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "A retry with the same key (for this token) answers the same code;"
    " another request under a key used in the last 7 days is a 422.",
    "schema": {"type": "string", "pattern": api.IDEMPOTENCY_KEY},
}
BODY_ERRORS = (400, 413, 415, 422)  # not JSON, too large, not application/json, refused field

OPERATIONS = (
    Operation("get", "/cases", "listCases", "Cases, newest first, a page at a time",
              ok=(200, api.CasePage), query=api.CaseQuery, errors=(400,)),
    Operation("post", "/cases", "createCase", "A new request (channel `api`), through intake",
              ok=(201, api.Created), scope="write", body=api.NewCase, errors=BODY_ERRORS,
              headers={"Location": {"description": "The public status page",
                                    "schema": {"type": "string"}}},
              links={"GetCase": {"operationId": "getCase",
                                 "parameters": {"code": "$response.body#/code"}},
                     "ActOnCase": {"operationId": "actOnCase",
                                   "parameters": {"code": "$response.body#/code"}}}),
    Operation("get", "/cases/{code}", "getCase", "One case with its events and messages",
              ok=(200, api.CaseDetail), errors=(404,)),
    Operation("post", "/cases/{code}/actions", "actOnCase", "One of the console's actions",
              ok=(200, api.CaseOut), scope="write", body=api.CaseAction,
              errors=(*BODY_ERRORS, 404, 409)),
    Operation("get", "/duty", "getDuty", "Who is on duty when (at most 92 days)",
              ok=(200, api.DutyOut), query=api.DutyQuery, errors=(400,)),
    Operation("get", "/reports", "getReport", "The figures of the console's reports",
              ok=(200, api.ReportOut), query=api.ReportQuery, errors=(400,)),
)  # fmt: skip

STATUS_TEXT = {
    400: "Bad request: a parameter or the JSON is wrong",
    401: "No token, or one that is unknown or revoked",
    403: "A read token on a write route",
    404: "No such case",
    409: "The case's state does not allow this (or it moved on since `seen_status`)",
    413: "Body over 64 KiB",
    415: "Not application/json",
    422: "A field is refused",
    429: "Too many requests with this token",
}


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": ref}}}


def _query_parameters(model: type[BaseModel], schemas: dict[str, Any]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(by_alias=True, ref_template=REF)
    schemas.update(schema.pop("$defs", {}))
    required = set(schema.get("required", ()))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": _present(prop),
            **({"description": prop["description"]} if "description" in prop else {}),
        }
        for name, prop in schema["properties"].items()
    ]


def _present(prop: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema: a parameter left out is the model's None, so the schema
    is that of a value given (a query string has no null)."""
    given = [s for s in prop.get("anyOf", ()) if s.get("type") != "null"]
    schema = dict(given[0]) if len(given) == 1 else dict(prop)
    if "format" in prop:  # set on the field (json_schema_extra), outside its anyOf
        schema["format"] = prop["format"]
    if "default" in prop and prop["default"] is not None:
        schema["default"] = prop["default"]
    return {k: v for k, v in schema.items() if k not in ("title", "description", "anyOf")}


def document(title: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document, `title` being the point's name."""
    models: list[tuple[type[BaseModel], Any]] = [(api.Errors, "serialization")]
    for op in OPERATIONS:
        models.append((op.ok[1], "serialization"))
        if op.body is not None:
            models.append((op.body, "validation"))
    refs, top = models_json_schema(models, by_alias=True, ref_template=REF)
    schemas: dict[str, Any] = top.get("$defs", {})
    errors = refs[(api.Errors, "serialization")]["$ref"]
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        parameters: list[dict[str, Any]] = []
        if "{code}" in op.path:
            parameters.append(CODE)
        if op.query is not None:
            parameters += _query_parameters(op.query, schemas)
        if op.id == "createCase":
            parameters.append(IDEMPOTENCY)
        status, model = op.ok
        ok: dict[str, Any] = {
            "description": "OK",
            "content": _json(refs[(model, "serialization")]["$ref"]),
        }
        if op.headers:
            ok["headers"] = op.headers
        if op.links:
            ok["links"] = op.links
        responses: dict[str, Any] = {str(status): ok}
        refusals = (*op.errors, 401, 429) + ((403,) if op.scope == "write" else ())
        for refusal in sorted(refusals):
            responses[str(refusal)] = {
                "description": STATUS_TEXT[refusal],
                "content": _json(errors),
            }
        for code in ("401", "403"):
            if code in responses:
                responses[code]["headers"] = {
                    "WWW-Authenticate": {"schema": {"type": "string"}, "required": True}
                }
        if "429" in responses:
            responses["429"]["headers"] = {
                "Retry-After": {"schema": {"type": "string"}, "required": True}
            }
        operation: dict[str, Any] = {
            "operationId": op.id,
            "summary": op.summary,
            "security": [{"token": [op.scope]}],
            "parameters": parameters,
            "responses": responses,
        }
        if op.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": _json(refs[(op.body, "validation")]["$ref"]),
            }
        paths.setdefault(PREFIX + op.path, {})[op.method] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"{title} — Liaison Hotline API",
            "version": "1",
            "description": (
                "Bearer tokens from `hotline token create NAME --scope read|write`; at most "
                "a fixed number of requests a minute per token (429 with Retry-After). Errors "
                'are `{"errors": {field: message}}`. Times are UTC (ISO 8601); `since`, '
                "`until`, `from`, `to` are the point's local dates."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
    }
