"""Open311 GeoReport v2, checked against the spec's own examples field by field
(http://wiki.open311.org/GeoReport_v2): discovery, services, a service definition, POST a
request (through intake, as a case of channel `open311`), GET requests and one request,
tokens, and the spec's error list, each in JSON and XML."""

from __future__ import annotations

import io
import json
import urllib.parse
import xml.etree.ElementTree as ET
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio as redis

from hotline import appkeys
from hotline.channels import open311
from hotline.queue import keys
from hotline.service.casework import Request
from hotline.service.workflow import Action
from tests.helpers import Client, route_all

BASE = "/open311/v2"
# The fields of the spec's examples, in its order.
SERVICE = ["service_code", "service_name", "description", "metadata", "type", "keywords",
           "group"]  # fmt: skip
ATTRIBUTE = ["variable", "code", "datatype", "required", "datatype_description", "order",
             "description"]  # fmt: skip
CREATED = ["service_request_id", "service_notice", "account_id"]
REQUEST = ["service_request_id", "status", "status_notes", "service_name", "service_code",
           "description", "agency_responsible", "service_notice", "requested_datetime",
           "updated_datetime", "expected_datetime", "address", "address_id", "zipcode", "lat",
           "long", "media_url"]  # fmt: skip
ENDPOINT = ["specification", "url", "changeset", "type", "formats"]


async def keys_for(client: Client) -> tuple[str, str]:
    """(write api_key, read api_key)"""
    now = client.app[appkeys.CLOCK]()
    tokens = client.app[appkeys.TOKENS]
    return (
        await tokens.create("city-12345", "write", "test", now),
        await tokens.create("city-reader", "read", "test", now),
    )


async def xml_of(resp: Any) -> ET.Element:
    assert resp.content_type == "text/xml" and resp.charset == "utf-8"
    raw = await resp.read()
    assert raw.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<')
    return ET.fromstring(raw)


def fields(element: ET.Element) -> list[str]:
    return [child.tag for child in element]


async def post(client: Client, form: dict[str, str], fmt: str = "json") -> Any:
    return await client.post(f"{BASE}/requests.{fmt}", data=form)


async def test_discovery_says_where_and_what(client: Client) -> None:
    resp = await client.get(f"{BASE}/discovery.json")
    assert resp.status == 200 and resp.content_type == "application/json"
    found = await resp.json()
    assert list(found) == ["changeset", "contact", "key_service", "endpoints"]
    (endpoint,) = found["endpoints"]
    assert list(endpoint) == ENDPOINT
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"] == str(client.make_url(BASE))
    assert endpoint["formats"] == ["text/xml", "application/json"]
    assert found["changeset"].endswith("Z")
    root = await xml_of(await client.get(f"{BASE}/discovery.xml"))
    assert root.tag == "discovery"
    assert fields(root) == ["changeset", "contact", "key_service", "endpoints"]
    endpoint_xml = root.find("endpoints/endpoint")
    assert endpoint_xml is not None and fields(endpoint_xml) == ENDPOINT
    assert [f.text for f in endpoint_xml.iterfind("formats/format")] == endpoint["formats"]


async def test_services_are_the_points_categories(client: Client) -> None:
    config = client.app[appkeys.DIRECTORY].config
    resp = await client.get(f"{BASE}/services.json", headers={"Accept-Language": "zh-CN"})
    services = await resp.json()
    assert [s["service_code"] for s in services] == [c.code for c in config.categories]
    for service, category in zip(services, config.categories, strict=True):
        assert list(service) == SERVICE
        assert service["service_name"] == category.names["zh"]
        assert service["metadata"] is True and service["type"] == "realtime"
        department = config.department(category.department) if category.department else None
        assert service["group"] == (department.name if department else None)
    english = await (await client.get(f"{BASE}/services.json?lang=en")).json()
    assert english[0]["service_name"] == config.categories[0].names["en"]
    root = await xml_of(await client.get(f"{BASE}/services.xml"))
    assert root.tag == "services"
    assert [fields(s) for s in root] == [SERVICE] * len(services)
    first = root[0]
    assert first.findtext("service_code") == services[0]["service_code"]
    assert first.findtext("metadata") == "true"
    point = config.point.id
    assert (await client.get(f"{BASE}/services.json?jurisdiction_id={point}")).status == 200
    wrong = await client.get(f"{BASE}/services.json?jurisdiction_id=elsewhere")
    assert wrong.status == 404 and list((await wrong.json())[0]) == ["code", "description"]


async def test_a_service_definition_lists_its_attribute(client: Client) -> None:
    code = client.app[appkeys.DIRECTORY].config.categories[0].code
    definition = await (await client.get(f"{BASE}/services/{code}.json")).json()
    assert list(definition) == ["service_code", "attributes"]
    assert definition["service_code"] == code
    (attribute,) = definition["attributes"]
    assert list(attribute) == ATTRIBUTE
    assert attribute["code"] == "company" and attribute["datatype"] == "string"
    root = await xml_of(await client.get(f"{BASE}/services/{code}.xml"))
    assert root.tag == "service_definition"
    found = root.find("attributes/attribute")
    assert found is not None and fields(found) == ATTRIBUTE
    assert found.findtext("variable") == "true" and found.findtext("required") == "false"
    missing = await client.get(f"{BASE}/services/nothing.xml")
    assert missing.status == 404
    error = (await xml_of(missing)).find("error")
    assert error is not None and fields(error) == ["code", "description"]
    assert error.findtext("code") == "404"


async def test_an_address_id_is_kept_in_the_text(client: Client) -> None:
    """The spec's third way to say where, an id in the jurisdiction's address register:
    the point keeps no register, so it joins the text as an address does, never dropped."""
    write, _ = await keys_for(client)
    code = client.app[appkeys.DIRECTORY].config.categories[0].code
    form = {"api_key": write, "service_code": code, "description": "路灯坏了",
            "address_id": "ADDR-99"}  # fmt: skip
    resp = await post(client, form)
    assert resp.status == 201, await resp.text()
    (created,) = await resp.json()
    await route_all(client.app)
    found = await client.app[appkeys.STORE].cases.by_code(created["service_request_id"])
    assert found is not None and found.text == "路灯坏了\n\naddress_id: ADDR-99"


async def test_a_posted_request_becomes_a_case_and_reads_back(client: Client) -> None:
    write, read = await keys_for(client)
    config = client.app[appkeys.DIRECTORY].config
    category = config.categories[0]
    form = {
        "api_key": write,
        "jurisdiction_id": config.point.id,
        "service_code": category.code,
        "description": "园区东门积水严重，货车无法进出",
        "address_string": "嘉创智谷东门",
        "lat": "30.61",
        "long": "121.06",
        "first_name": "明",
        "last_name": "王",
        "phone": "13900000001",
        "email": "wang@example.com",  # the spec's; a case keeps no e-mail
        "attribute[company]": "平湖某某精密机械有限公司",
    }
    resp = await post(client, form)
    assert resp.status == 201, await resp.text()
    (created,) = await resp.json()
    assert list(created) == CREATED
    code = created["service_request_id"]
    assert code in created["service_notice"] and created["account_id"] is None
    await route_all(client.app)
    case = await client.app[appkeys.STORE].cases.by_code(code)
    assert case is not None
    assert (case.channel, case.category, case.company) == ("open311", category.code, form[
        "attribute[company]"])  # fmt: skip
    # A Chinese name as it is written: family name first, no space.
    assert case.submitter_name == "王明" and case.submitter_phone == "+8613900000001"
    assert case.text.startswith(form["description"]) and "嘉创智谷东门" in case.text

    one = await client.get(f"{BASE}/requests/{code}.json?api_key={read}")
    (request,) = await one.json()
    assert list(request) == REQUEST
    assert request["service_request_id"] == code and request["status"] == "open"
    assert request["service_code"] == category.code
    assert request["description"] == case.text
    assert request["requested_datetime"].endswith("+08:00")  # the point's offset
    assert request["expected_datetime"] is not None and request["status_notes"] is None
    assert "13900000001" not in json.dumps(request) and "王" not in json.dumps(request)
    # Where it is comes back as it was given (the spec's address, lat and long).
    assert (request["address"], request["lat"], request["long"]) == ("嘉创智谷东门", 30.61, 121.06)
    assert (case.address, case.latitude, case.longitude) == ("嘉创智谷东门", 30.61, 121.06)

    work = client.app[appkeys.CASEWORK]
    now = client.app[appkeys.CLOCK]()
    department = config.departments[0]
    await work.act(code, Request(Action.REPLY, "shen", text="已联系物业抽水"), now)
    await work.act(code, Request(Action.REFER, "shen", department=department.id, due=now), now)
    (request,) = await (await client.get(f"{BASE}/requests/{code}.json?api_key={read}")).json()
    assert request["status_notes"] is None  # texted to the submitter alone: not public
    assert request["agency_responsible"] == department.name
    await work.act(code, Request(Action.WITHDRAW, "shen", text="企业撤回"), now)
    root = await xml_of(await client.get(f"{BASE}/requests/{code}.xml?api_key={read}"))
    assert root.tag == "service_requests"
    request_xml = root.find("request")
    assert request_xml is not None and fields(request_xml) == REQUEST
    assert request_xml.findtext("status") == "closed"
    assert (request_xml.findtext("lat"), request_xml.findtext("long")) == ("30.61", "121.06")
    assert open311.encode("xml", "r", {"lat": 0.00001}).body.decode().count("0.00001") == 1
    assert request_xml.findtext("address") == "嘉创智谷东门"
    assert request_xml.findtext("expected_datetime") == ""  # an empty element
    # Withdrawn while the department had it: it is not that department's any more.
    assert request_xml.findtext("agency_responsible") == ""

    listed = await client.get(f"{BASE}/requests.json?api_key={read}&status=closed")
    assert [r["service_request_id"] for r in await listed.json()] == [code]
    # The spec lets status and service_code repeat, or list values with commas.
    other = config.categories[1].code
    for query in (f"service_code={category.code},{other}",
                  f"service_code={other}&service_code={category.code}",
                  "status=open&status=closed", "status=open,closed"):  # fmt: skip
        both = await client.get(f"{BASE}/requests.json?api_key={read}&{query}")
        assert [r["service_request_id"] for r in await both.json()] == [code], query
    only_other = await client.get(f"{BASE}/requests.json?api_key={read}&service_code={other}")
    assert await only_other.json() == []
    assert await (await client.get(f"{BASE}/requests.json?api_key={read}&status=open")).json() == []
    by_id = await client.get(
        f"{BASE}/requests.json?api_key={read}&service_request_id={code},XXXXXXX"
    )
    assert [r["service_request_id"] for r in await by_id.json()] == [code]
    # An empty value first (as some clients send) asks for the others, not for every one.
    by_id = await client.get(
        f"{BASE}/requests.json?api_key={read}&service_request_id=&service_request_id=XXXXXXX"
    )
    assert await by_id.json() == []
    dates = "start_date=2020-01-01T00:00:00Z&end_date=2020-02-01T00:00:00Z"
    dated = f"{BASE}/requests.json?api_key={read}&{dates}"
    assert await (await client.get(dated)).json() == []

    token = await (await client.get(f"{BASE}/tokens/{code}.json")).json()
    assert token == [{"service_request_id": code, "token": code}]
    token_xml = await xml_of(await client.get(f"{BASE}/tokens/{code}.xml"))
    assert fields(token_xml[0]) == ["service_request_id", "token"]


async def test_xml_answers_a_post_as_the_spec_writes_it(client: Client) -> None:
    write, _ = await keys_for(client)
    code = client.app[appkeys.DIRECTORY].config.categories[0].code
    resp = await post(
        client, {"api_key": write, "service_code": code, "description": "路灯坏了"}, "xml"
    )
    assert resp.status == 201
    root = await xml_of(resp)
    assert root.tag == "service_requests" and fields(root[0]) == CREATED
    assert root[0].find("account_id") is not None and root[0].findtext("account_id") == ""


async def test_status_notes_give_the_outcome_once_resolved(client: Client) -> None:
    """As /track shows it: the outcome once the request is resolved (a list and one request
    alike); before, and reopened, the latest public reply or department's answer marked
    public; rejected, the reason given."""
    write, read = await keys_for(client)
    category = client.app[appkeys.DIRECTORY].config.categories[0].code
    resp = await post(client, {"api_key": write, "service_code": category, "description": "积水"})
    (created,) = await resp.json()
    code = created["service_request_id"]
    await route_all(client.app)
    work = client.app[appkeys.CASEWORK]
    now = client.app[appkeys.CLOCK]()

    async def notes() -> tuple[str | None, str | None]:
        one = await client.get(f"{BASE}/requests/{code}.json?api_key={read}")
        listed = await client.get(f"{BASE}/requests.json?api_key={read}&service_request_id={code}")
        return (await one.json())[0]["status_notes"], (await listed.json())[0]["status_notes"]

    await work.act(code, Request(Action.REPLY, "shen", text="已联系物业抽水"), now)
    assert await notes() == ("已联系物业抽水", "已联系物业抽水")  # no number: shown on /track
    # A department's answer marked public is the latest word, as /track shows it; one kept
    # inside is not.
    due = now + timedelta(days=10)
    await work.act(code, Request(Action.REFER, "shen", department="urban", due=due), now)
    later = now + timedelta(minutes=5)
    await work.act(code, Request(Action.ANSWER, "shen", text="内部：需再议"), later)
    assert await notes() == ("已联系物业抽水", "已联系物业抽水")
    await work.act(code, Request(Action.REFER, "shen", department="urban", due=due), later)
    answered = "城建环资工委：已安排疏通排水管"
    later += timedelta(minutes=5)
    await work.act(code, Request(Action.ANSWER, "shen", text=answered, public=True), later)
    assert await notes() == (answered, answered)
    now = later + timedelta(minutes=5)
    await work.act(code, Request(Action.RESOLVE, "shen", text="积水已排净，排水口已疏通"), now)
    assert await notes() == ("积水已排净，排水口已疏通",) * 2
    # Fulfilled: expected when it was, not at a resolution due time still ahead (or past).
    one = await client.get(f"{BASE}/requests/{code}.json?api_key={read}")
    tz = client.app[appkeys.DIRECTORY].config.point.timezone
    assert (await one.json())[0]["expected_datetime"] == open311.local_time(now, tz)
    await work.act(code, Request(Action.REOPEN, "shen", text="仍有积水"), now)
    assert await notes() == (answered, answered)  # the latest public word again
    # Rejected with a reason the submitter is told: that is its last word, as on /track.
    await work.act(code, Request(Action.REJECT, "shen", text="重复提交，已并入同一诉求办理"), now)
    assert await notes() == ("重复提交，已并入同一诉求办理",) * 2


async def test_bad_posts_get_the_spec_error_and_store_nothing(
    client: Client, redis_client: redis.Redis
) -> None:
    write, read = await keys_for(client)
    config = client.app[appkeys.DIRECTORY].config
    good = {"api_key": write, "service_code": config.categories[0].code, "description": "路灯坏了"}

    async def refused(form: dict[str, str] | bytes, status: int, naming: str, **kw: Any) -> None:
        headers = {"Accept-Language": "en"} | kw.pop("headers", {})
        resp = await client.post(f"{BASE}/requests.json", data=form, headers=headers, **kw)
        assert resp.status == status, (form, await resp.text())
        found = await resp.json()
        assert isinstance(found, list) and found and list(found[0]) == ["code", "description"]
        assert found[0]["code"] == status
        assert any(naming in e["description"] for e in found), found

    await refused(good | {"api_key": ""}, 403, "api_key")
    await refused(good | {"api_key": "hl_" + "x" * 43}, 403, "api_key")
    await refused(good | {"api_key": read}, 403, "api_key")
    await refused(good | {"service_code": ""}, 400, "service_code")
    await refused(good | {"service_code": "nothing"}, 400, "service_code")
    await refused(good | {"description": "  "}, 400, "description")
    # Nothing to read, whatever says where: not a request of an address alone.
    await refused(good | {"description": "\u200b", "address_string": "东门"}, 400, "description")
    await refused(good | {"description": " ", "address_id": "ADDR-9"}, 400, "description")
    await refused(good | {"address_id": "a\nb"}, 400, "address_id")
    await refused(good | {"address_id": "x" * 101}, 400, "address_id")
    await refused(good | {"description": "x" * 5000}, 400, "description")
    # Within the limit alone, over it with the address joined: its own length is named.
    near = good | {"description": "x" * 3995, "address_string": "嘉创智谷东门"}
    await refused(near, 400, "at most 3992 characters (this has 3995)")
    await refused(good | {"description": "a\x00b"}, 400, "description")
    await refused(good | {"description": "a\x1bb"}, 400, "description")
    await refused(good | {"lat": "30.6"}, 400, "long")
    await refused(good | {"lat": "91", "long": "0"}, 400, "lat")
    await refused(good | {"lat": "nan", "long": "0"}, 400, "lat")
    await refused(good | {"lat": "1_0", "long": "0"}, 400, "lat")
    await refused(good | {"lat": "1e1", "long": "0"}, 400, "lat")
    await refused(good | {"lat": "１０", "long": "0"}, 400, "decimal degrees")
    await refused(good | {"lat": "91", "long": "0"}, 400, "from -90 to 90")
    await refused(good | {"media_url": "javascript:alert(1)"}, 400, "media_url")
    await refused(good | {"phone": "not a phone"}, 400, "phone")
    await refused(good | {"attribute[colour]": "red"}, 400, "attribute[colour]")
    await refused(good | {"attribute[company]": "x" * 300}, 400, "attribute[company]")
    await refused(good | {"jurisdiction_id": "elsewhere"}, 404, "jurisdiction_id")
    raw = urllib.parse.urlencode(good).encode() + b"&first_name=%FF%FE"
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    await refused(raw, 400, "UTF-8 form data", headers=form_type)
    await refused(
        raw.replace(b"%FF%FE", b"a") + b"&service_code=a", 400, "service_code", headers=form_type
    )
    resp = await client.post(
        f"{BASE}/requests.json", data=json.dumps(good), headers={"Content-Type": "application/json"}
    )
    assert resp.status == 415 and (await resp.json())[0]["code"] == 415
    resp = await client.post(f"{BASE}/requests.xml", data={"description": "x"})
    assert resp.status == 403 and (await xml_of(resp)).tag == "errors"
    big = await client.post(
        f"{BASE}/requests.json",
        data=io.BytesIO(urllib.parse.urlencode(good | {"description": "x" * 2_000_000}).encode()),
        headers=form_type,
    )
    assert big.status == 413 and (await big.json())[0]["code"] == 413
    assert (await big.json())[0]["description"] == "内容：最多 256 KiB。"  # ours, named
    assert await redis_client.xlen(keys.INTAKE_STREAM) == 0  # nothing half-stored


@pytest.mark.parametrize(
    ("lat", "long"),
    [("30.71234567890123", "121.0123456789012"), ("+30.7", "-121.5"), (".5", "30."), ("0", "0")],
)
async def test_positions_as_gps_and_clients_write_them_are_taken(
    client: Client, lat: str, long: str
) -> None:
    write, _ = await keys_for(client)
    code = client.app[appkeys.DIRECTORY].config.categories[0].code
    form = {"api_key": write, "service_code": code, "description": "路灯不亮",
            "lat": lat, "long": long}  # fmt: skip
    resp = await post(client, form)
    assert resp.status == 201, await resp.text()


async def test_reading_requests_takes_a_key_and_good_parameters(client: Client) -> None:
    _, read = await keys_for(client)
    for path in ("requests.json", "requests/ABCDEFG.json"):
        resp = await client.get(f"{BASE}/{path}")
        assert resp.status == 403 and "api_key" in (await resp.json())[0]["description"]
    for query, naming in (
        ("status=pending", "status"),
        ("start_date=yesterday", "start_date"),
        ("start_date=2026-11-01", "start_date"),  # a time with its offset, the spec says
        ("start_date=2026-11-02T00:00:00Z&end_date=2026-11-01T00:00:00Z", "start_date"),
        ("service_code=nothing", "service_code"),
        ("service_request_id=" + ",".join(["ABCDEFG"] * 101), "service_request_id"),
        ("status=pending&status=open", "status"),
        ("end_date=9999-12-31T23:59:59.999999Z", "end_date"),
        ("end_date=0001-01-01T00:00:00%2B00:00", "end_date"),
        ("start_date=0001-01-01T00:00:00%2B01:00", "start_date"),
        ("start_date=2026-01-01T00:00:00Z&end_date=2026-06-01T00:00:00Z", "end_date"),
        ("start_date=2026-01-01T00:00:00Z", "start_date"),  # alone, it runs to now
        ("start_date=2099-01-01T00:00:00Z", "晚于当前时间"),  # no end_date to blame
        ("jurisdiction_id=a&jurisdiction_id=b", "jurisdiction_id"),
    ):
        resp = await client.get(f"{BASE}/requests.json?api_key={read}&{query}")
        assert resp.status == 400, query
        assert naming in (await resp.json())[0]["description"], query
    missing = await client.get(f"{BASE}/requests/ABCDEFG.xml?api_key={read}")
    assert missing.status == 404 and (await xml_of(missing)).tag == "errors"
    assert (await client.get(f"{BASE}/tokens/ABCDEFG.json")).status == 404
    unknown = await client.get(f"{BASE}/requests.yaml")
    assert unknown.status == 404 and (await unknown.json())[0]["code"] == 404
    # Browser clients may read what is served, errors included (no cookie is involved).
    for resp in (unknown, missing, await client.get(f"{BASE}/services.json")):
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
    # An offset's "+" sent unencoded arrives as a space: taken as the "+" it was; and a
    # jurisdiction_id given empty is one not given.
    for query in ("start_date=2026-11-01T00:00:00+08:00", "end_date=2026-11-24T11:00:00+0800",
                  "start_date=2026-11-01T00:00:00%2008:00", "jurisdiction_id="):  # fmt: skip
        resp = await client.get(f"{BASE}/requests.json?api_key={read}&{query}")
        assert resp.status == 200, (query, await resp.text())
