"""The API's OpenAPI 3.1 document: generated from the models the handlers validate with, valid
under openapi-spec-validator, covering every route; and schemathesis, run against a live
`hotline serve --demo`, finds no 5xx, no answer outside its schema, no undocumented status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from hotline import appkeys
from hotline.channels.webform import TEXT_MAX
from hotline.service.workflow import MEMBER_ACTIONS
from tests.helpers import Client
from tests.processes import Service

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
)


async def test_the_document_is_valid_and_public(client: Client) -> None:
    resp = await client.get("/api/v1/openapi.json")  # no token needed
    assert resp.status == 200
    document = await resp.json()
    validate(document)  # raises on any fault, OpenAPI 3.1 (JSON Schema 2020-12) rules
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"].startswith("新仓镇")  # the point's own name
    documented = {
        (method.upper(), path) for path, ops in document["paths"].items() for method in ops
    }
    routed = {
        (route.method, route.resource.canonical)
        for route in client.app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/api/v1/")
        and route.method != "HEAD"
    }
    assert routed - documented == {("GET", "/api/v1/openapi.json")}
    assert documented <= routed


async def test_the_document_says_what_the_handlers_check(client: Client) -> None:
    document = await (await client.get("/api/v1/openapi.json")).json()
    schemas = document["components"]["schemas"]
    assert schemas["NewCase"]["properties"]["text"]["maxLength"] == TEXT_MAX
    assert schemas["NewCase"]["additionalProperties"] is False
    actions = schemas["CaseAction"]["properties"]["action"]["enum"]
    assert actions == [a.value for a in MEMBER_ACTIONS]
    create = document["paths"]["/api/v1/cases"]["post"]
    assert set(create["responses"]) == {"201", "400", "401", "403", "413", "415", "422", "429"}
    assert create["responses"]["201"]["links"]["GetCase"]["operationId"] == "getCase"
    # A field the schema bounds is refused by the handler at that bound, naming the field.
    now = client.app[appkeys.CLOCK]()
    secret = await client.app[appkeys.TOKENS].create("doc", "write", "test", now)
    resp = await client.post(
        "/api/v1/cases",
        data=json.dumps({"text": "x" * (TEXT_MAX + 1), "urgent": "yes", "colour": 1}),
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
    )
    assert resp.status == 422
    assert set((await resp.json())["errors"]) == {"text", "urgent", "colour"}


@pytest.mark.timeout(240)
def test_schemathesis_finds_nothing_against_the_live_service(tmp_path: Path) -> None:
    service = Service(tmp_path / "var", env={"HOTLINE_API_RATE": "1000000"})
    service.start()
    try:
        made = subprocess.run(
            [sys.executable, "-m", "hotline", "token", "create", "schemathesis",
             "--scope", "write", "--demo"],
            env=service.env, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        secret = made.stdout.split()[0]
        run = subprocess.run(
            [
                sys.executable, "-m", "schemathesis.cli", "run",
                f"{service.base}/api/v1/openapi.json",
                "--header", f"Authorization: Bearer {secret}",
                "--checks", ",".join(CHECKS),
                "--max-examples", "25", "--seed", "20261126",
                "--workers", "1", "--no-color",
            ],
            env=os.environ | {"SCHEMATHESIS_HOOKS": ""},
            capture_output=True, text=True, timeout=200, cwd=tmp_path,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
        assert "Stateful" in run.stdout and "API Links" in run.stdout  # the links were followed
    finally:
        service.stop()
    log = service.log.read_text()
    assert "Traceback" not in log and " ERROR " not in log
    assert "refused a malformed HTTP request" in log  # schemathesis's NUL-in-a-header probe
