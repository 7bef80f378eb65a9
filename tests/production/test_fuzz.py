"""Fuzzing a live hub process (PostgreSQL schema + private Redis, tasks in-process): generated requests, valid and
invalid, must never get a 5xx, and every error must be a FHIR OperationOutcome (application/fhir+json).

Two generators:
- schemathesis over the hub's own OpenAPI description (`/openapi.json`): every path and method, generated path,
  header and body values, with and without a token;
- a hypothesis property-based FHIR client that knows more than the OpenAPI says: resource types and search
  parameters from the CapabilityStatement, modifiers, prefixes, chains, `_include`, paging, bodies that are valid,
  nearly valid, deeply nested, not JSON or not an object, transaction Bundles, conditional headers.

The suite runs a short, derandomized version (a few hundred requests). The long run:
    HUB_FUZZ_EXAMPLES=5000 pytest tests/production/test_fuzz.py
(random seeds each run; the number is the hypothesis client's examples, schemathesis gets a share per operation).
"""

from __future__ import annotations

import json
import os
import string
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from production_stack import (
    ADMIN_ORG,
    AGB,
    FHIR_JSON,
    GP_ORG,
    Api,
    PrivateRedis,
    Schema,
    hub_env,
    start_api,
    token,
    wait_ready,
)

pytestmark = pytest.mark.slow
LONG = "HUB_FUZZ_EXAMPLES" in os.environ
EXAMPLES = int(os.environ.get("HUB_FUZZ_EXAMPLES", "240"))
PER_OPERATION = max(3, EXAMPLES // 40)
# Endpoints whose error bodies are not FHIR by their own standard: the OAuth token endpoint answers RFC 6749 JSON
# errors; /metrics is Prometheus text. The live stream never ends, so it is not fuzzed here.
NOT_FHIR = ("/auth/token",)
SKIP = ("/api/availability/stream",)
FUZZ_SETTINGS = settings(max_examples=PER_OPERATION, deadline=None, derandomize=not LONG, database=None,
                         suppress_health_check=list(HealthCheck), print_blob=True)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    log_dir = tmp_path_factory.mktemp("fuzz")
    redis = PrivateRedis.start_new(log_dir)
    schema = Schema.create("t_fuzz")
    env = hub_env(schema.url, schema.name, redis.url, "", HUB_TASK_MODE="inprocess",
                  HUB_RATE_LIMIT_PER_MINUTE="1000000")
    api = start_api("api-fuzz", env, log_dir)
    try:
        wait_ready(api)
        seed(api)
        yield api
    finally:
        api.stop()
        redis.stop()
        schema.drop()


def seed(api: Api) -> None:
    """A few resources the generators can hit by id (ids `fz-*`)."""
    auth = {"Authorization": f"Bearer {token()}", "Content-Type": FHIR_JSON}
    with api.client() as http:
        for resource in SEEDS:
            r = http.put(f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource, headers=auth)
            assert r.status_code in (200, 201), r.text


SEEDS: list[dict[str, Any]] = [
    {"resourceType": "Organization", "id": "fz-org", "name": "Fuzz zorg", "active": True,
     "identifier": [{"system": AGB, "value": "73739999"}]},
    {"resourceType": "Location", "id": "fz-bed", "status": "active", "name": "Fuzz bed",
     "operationalStatus": {"system": "http://terminology.hl7.org/CodeSystem/v2-0116", "code": "U"},
     "physicalType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type",
                                  "code": "bd"}]},
     "managingOrganization": {"reference": "Organization/fz-org"}},
    {"resourceType": "Patient", "id": "fz-pat", "name": [{"family": "Fuzz", "given": ["Anna"]}],
     "birthDate": "1931-02-03", "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/bsn",
                                                "value": "999990019"}]},
    {"resourceType": "Observation", "id": "fz-obs", "status": "final", "code": {"text": "bp"},
     "subject": {"reference": "Patient/fz-pat"}, "valueQuantity": {"value": 120, "unit": "mm[Hg]"}},
]


# ------------------------------------------------------------------------------------------------ the check
def assert_fhir_response(response: Any, method: str, path: str) -> None:
    """Zero 5xx; every 4xx (and 5xx) an OperationOutcome with issues, as application/fhir+json."""
    status = response.status_code
    where = f"{method} {path} -> {status}: {response.text[:300]}"
    assert status < 500, where
    if status < 400 or path.startswith(NOT_FHIR):
        return
    content_type = header(response, "content-type")
    assert content_type.startswith(FHIR_JSON), f"{where} (content-type {content_type})"
    body = orjson.loads(response.content)
    assert body.get("resourceType") == "OperationOutcome", where
    issues = body.get("issue") or []
    assert issues and all(i.get("severity") and i.get("code") for i in issues), where


def header(response: Any, name: str) -> str:
    """httpx headers, or schemathesis' dict of lists."""
    value = response.headers.get(name) or response.headers.get(name.title()) or ""
    return str(value[0] if isinstance(value, list) and value else value)


# ------------------------------------------------------------------------------------------------ schemathesis
def test_openapi_generated_requests_get_no_5xx_and_every_error_is_an_operation_outcome(live: Api) -> None:
    """Every operation of /openapi.json, positive and negative generation, PER_OPERATION examples each (driven
    through hypothesis directly: schemathesis' pytest plugin does not load under pytest 9)."""
    from schemathesis.generation import GenerationMode

    schema = schemathesis.openapi.from_url(f"{live.base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    fuzzed = [op for op in operations if op.path not in SKIP]
    assert len(fuzzed) >= 50, [op.path for op in operations]  # the description covers the whole API
    auth = {"Authorization": f"Bearer {token()}"}
    sent = 0
    for operation in fuzzed:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @FUZZ_SETTINGS
            @given(case=operation.as_strategy(mode))
            def call(case: Any) -> None:
                nonlocal sent
                extra = {} if "authorization" in {k.lower() for k in case.headers or {}} else auth
                try:
                    response = case.call(base_url=live.base, headers=extra, timeout=15)
                except (ValueError, UnicodeError):
                    return  # requests refuses to send it (e.g. a control character in a header)
                sent += 1
                assert_fhir_response(response, case.method, case.formatted_path)

            try:
                call()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE, operation.path  # nothing in it can be made invalid
    assert sent >= len(fuzzed) * 2


# ------------------------------------------------------------------------------------------------ FHIR client
TYPES = ["Patient", "Location", "Organization", "Observation", "HealthcareService", "ServiceRequest", "Task",
         "Subscription", "MeasureReport", "Practitioner", "PractitionerRole", "Consent", "Condition", "Encounter",
         "CodeSystem", "ValueSet", "SearchParameter", "AuditEvent", "Provenance", "Binary", "Bundle",
         "DocumentReference", "Endpoint", "Goal", "CarePlan", "QuestionnaireResponse"]
BAD_TYPES = ["patient", "Foo", "Patient$", "_history", "$validate", "..", "Pat%20ient", "Ω", "A" * 300]
ROLES = [("admin", ADMIN_ORG), ("gp", GP_ORG), ("vvt-provider", f"{AGB}|73739999"), ("hap-doctor", f"{AGB}|1"),
         ("municipality", "https://zorgnet-hub.nl/fhir/NamingSystem/gemeentecode|0106"), ("privacy-officer", None),
         ("coordinator", "http://fhir.nl/fhir/NamingSystem/ura|90000001")]
PARAMS = ["_id", "_lastUpdated", "_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total",
          "_has:Observation:subject:code", "_tag", "_profile", "_text", "_content", "_format", "_page", "_offset",
          "name", "identifier", "status", "subject", "patient", "organization", "address-postalcode", "code",
          "date", "birthdate", "family", "given", "gender", "type", "partof", "near", "operational-status",
          "subject.name", "subject:Patient.birthdate", "organization.name", "managingOrganization.identifier",
          "value-quantity", "care-product", "focus", "owner", "business-status", "url", "version", "x" * 80]
MODIFIERS = ["", ":exact", ":contains", ":missing", ":not", ":text", ":above", ":below", ":in", ":not-in",
             ":of-type", ":identifier", ":Patient", ":iterate", ":bogus", "::", ":"]
PREFIXES = ["", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap", "zz"]

ids = st.one_of(st.sampled_from(["fz-org", "fz-bed", "fz-pat", "fz-obs", "nope", "1"]),
                st.from_regex(r"[A-Za-z0-9\-.]{1,64}", fullmatch=True),
                st.text(min_size=0, max_size=80))
SEED_TYPES = ["Organization", "Location", "Patient", "Observation"]
res_types = st.one_of(st.sampled_from(SEED_TYPES), st.sampled_from(TYPES), st.sampled_from(TYPES),
                      st.sampled_from(BAD_TYPES), st.text(max_size=20))
values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["Patient/fz-pat", "Organization/fz-org", "http://x|y", "|", "a,b,c", "*", "-", "0", "-1",
                     "1e309", "NaN", "2024", "2024-13-45", "2024-02-30T25:61:00Z", "9401AB", "9401 AB", "9401",
                     "Location:managingOrganization", "Patient:*", "true", "maybe", "999999999999999999999",
                     "%", "\x00", "' OR 1=1 --", "http://fhir.nl/fhir/NamingSystem/bsn|999990019"]),
    st.builds(lambda p, n: f"{p}{n}", st.sampled_from(PREFIXES),
              st.one_of(st.integers(-10**12, 10**12).map(str), st.dates().map(str),
                        st.floats(allow_nan=True).map(str))),
)
query = st.lists(st.tuples(st.builds(lambda n, m: n + m, st.sampled_from(PARAMS), st.sampled_from(MODIFIERS)),
                           values), max_size=5)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=False),
                         st.text(max_size=30))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=20)


def nested(depth: int) -> Any:
    value: Any = {"deep": True}
    for _ in range(depth):
        value = {"extension": [{"url": "http://x", "valueString": "x", "extension": [value]}]}
    return value


@st.composite
def resources(draw: st.DrawFn, res_type: str, res_id: str | None = None) -> Any:
    """Mostly a valid resource of the requested type (a seed with a new id), else one with random changes, a random
    JSON value, or a deeply nested one."""
    kind = draw(st.sampled_from(["valid", "valid", "mutated", "mutated", "random", "nested"]))
    same_type = [r for r in SEEDS if r["resourceType"] == res_type]
    base = dict(draw(st.sampled_from(same_type or SEEDS)))
    if res_id is None:
        base.pop("id", None)
    else:
        base["id"] = res_id if draw(st.integers(0, 4)) else draw(ids)
    if kind == "mutated":
        for key, value in draw(st.dictionaries(st.sampled_from(
                ["name", "status", "id", "meta", "text", "extension", "identifier", "subject", "birthDate",
                 "operationalStatus", "managingOrganization", "contained", "resourceType", "code", "zzz"]),
                json_values, min_size=1, max_size=3)).items():
            base[key] = value
    elif kind == "random":
        return draw(json_values)
    elif kind == "nested":
        base["extension"] = [nested(draw(st.integers(1, 120)))]
    return base


def dumps(value: Any) -> bytes:
    """Any JSON the generators make, big integers and deep nesting included (orjson refuses both)."""
    return json.dumps(value).encode()


@st.composite
def bodies(draw: st.DrawFn, res_type: str, res_id: str | None) -> tuple[bytes, str]:
    content_type = draw(st.sampled_from([FHIR_JSON] * 6 + ["application/json", FHIR_JSON + "; charset=utf-8",
                                         "text/plain", "application/fhir+xml", "", "multipart/form-data"]))
    shape = draw(st.sampled_from(["resource"] * 5 + ["bytes", "bundle", "bundle", "patch", "parameters"]))
    if shape == "bytes":
        raw = draw(st.one_of(st.binary(max_size=200), st.sampled_from(
            [b"", b"{", b"null", b"[]", b"{\"resourceType\":", b"\xff\xfe", b"{}" * 50, b"[" * 5000 + b"]" * 5000])))
        return raw, content_type
    if shape == "bundle":
        entries = draw(st.lists(st.fixed_dictionaries({
            "request": st.fixed_dictionaries({"method": st.sampled_from(["POST", "PUT", "GET", "DELETE", "PATCH",
                                                                        "HEAD", "X"]),
                                              "url": st.one_of(st.sampled_from(
                                                  ["Patient", "Location/fz-bed", "Patient?name=x", "Observation",
                                                   "urn:uuid:1", "", "/", "Patient/$validate"]),
                                                  st.text(max_size=20))}),
            "resource": st.sampled_from(SEED_TYPES).flatmap(resources),
            "fullUrl": st.sampled_from(["urn:uuid:5b5c6a1e-0000-4000-8000-000000000001", "x", "Patient/1"]),
        }), max_size=4))
        bundle = {"resourceType": "Bundle", "type": draw(st.sampled_from(["transaction", "batch", "collection", "x"])),
                  "entry": entries}
        return dumps(bundle), content_type
    if shape == "patch":
        ops = draw(st.lists(st.fixed_dictionaries({"op": st.sampled_from(["add", "remove", "replace", "move",
                                                                         "copy", "test", "x"]),
                                                   "path": st.sampled_from(["/name", "/id", "/meta", "/status", "",
                                                                            "/name/0/family", "/a/b/c", "~"]),
                                                   "value": json_values}), max_size=3))
        return dumps(ops), draw(st.sampled_from(["application/json-patch+json", content_type]))
    if shape == "parameters":
        params = {"resourceType": "Parameters", "parameter": draw(st.lists(st.fixed_dictionaries({
            "name": st.sampled_from(["status", "admission", "reason", "secret", "location", "resource", "code",
                                     "system", "url", "x"]),
            "valueString": st.text(max_size=30)}), max_size=3))}
        return dumps(params), content_type
    return dumps(draw(resources(res_type, res_id))), content_type


@st.composite
def fhir_requests(draw: st.DrawFn) -> tuple[str, str, list[tuple[str, str]], dict[str, str], bytes | None]:
    res_type = draw(res_types)
    res_id = draw(ids)
    kind = draw(st.sampled_from(["read", "vread", "history", "search", "search-post", "create", "update",
                                 "conditional", "patch", "delete", "transaction", "validate", "operation",
                                 "availability", "set-status", "system"]))
    headers: dict[str, str] = {}
    auth = draw(st.sampled_from(["admin"] * 6 + ["role"] * 3 + ["none", "garbage"]))
    if auth in ("admin", "role"):
        role, org = ROLES[0] if auth == "admin" else draw(st.sampled_from(ROLES))
        headers["Authorization"] = f"Bearer {token(role, org)}"
    elif auth == "garbage":
        headers["Authorization"] = draw(st.sampled_from(["Bearer", "Bearer x.y.z", "Basic abc", "Bearer " + "a" * 500]))
    if draw(st.integers(0, 3)) == 0:
        headers.update(draw(st.dictionaries(st.sampled_from(
            ["If-Match", "If-None-Match", "If-None-Exist", "If-Modified-Since", "Prefer", "Accept",
             "X-Purpose-Of-Use", "X-Request-Id"]),
            st.sampled_from(['W/"1"', '"2"', "W/\"x\"", "*", "name=x", "return=minimal", "return=representation",
                             "handling=strict", "respond-async", "application/fhir+xml", "text/html", "*/*",
                             "TREAT", "ETREAT", "", "\t", "Mon, 01 Jan 2024 00:00:00 GMT"]), max_size=3)))
    params = draw(query) if kind in ("search", "history", "system", "availability", "operation") else []
    body, method, path = None, "GET", f"/fhir/{res_type}/{res_id}"
    if kind == "vread":
        path += f"/_history/{draw(st.one_of(st.integers(-2, 5).map(str), st.text(max_size=5)))}"
    elif kind == "history":
        path = draw(st.sampled_from([f"/fhir/{res_type}/_history", path + "/_history"]))
        params += draw(st.lists(st.tuples(st.sampled_from(["_since", "_at", "_count"]), values), max_size=2))
    elif kind in ("search", "search-post"):
        path = f"/fhir/{res_type}"
        if kind == "search-post":
            method, path = "POST", path + "/_search"
            body = "&".join(f"{k}={v}" for k, v in draw(query)).encode()
            headers["Content-Type"] = draw(st.sampled_from(["application/x-www-form-urlencoded", "", FHIR_JSON]))
    elif kind in ("create", "update", "conditional", "patch", "transaction", "validate", "set-status"):
        if kind in ("create", "update", "conditional", "patch") and draw(st.integers(0, 3)):
            res_type = draw(st.sampled_from(SEED_TYPES))
        body, headers["Content-Type"] = draw(bodies(res_type, res_id if kind in ("update", "patch") else None))
        method, path = {"create": ("POST", f"/fhir/{res_type}"), "update": ("PUT", path),
                        "conditional": ("PUT", f"/fhir/{res_type}"), "patch": ("PATCH", path),
                        "transaction": ("POST", "/fhir"), "validate": ("POST", f"/fhir/{res_type}/$validate"),
                        "set-status": ("POST", f"/fhir/Location/{res_id}/$set-status")}[kind]
        if kind == "conditional":
            params = draw(query)
    elif kind == "delete":
        method = "DELETE"
        if draw(st.booleans()):
            path, params = f"/fhir/{res_type}", draw(query)
    elif kind == "operation":
        path = draw(st.sampled_from([f"/fhir/{res_type}/$everything", "/fhir/CodeSystem/$lookup",
                                     "/fhir/ValueSet/$expand", "/fhir/ValueSet/$validate-code",
                                     "/fhir/Patient/$acp-summary", f"/fhir/Patient/{res_id}/$acp-summary",
                                     f"/fhir/Task/{res_id}/$accept", f"/fhir/ServiceRequest/{res_id}/$route"]))
        method = "POST" if "$accept" in path or "$route" in path else "GET"
    elif kind == "availability":
        path = draw(st.sampled_from(["/fhir/HealthcareService/$availability", "/api/availability",
                                     "/api/availability/history"]))
        params += draw(st.lists(st.tuples(st.sampled_from(["product", "organization", "region", "near", "bucket",
                                                           "since", "until"]), values), max_size=3))
    elif kind == "system":
        path = draw(st.sampled_from(["/fhir/_history", "/fhir/metadata", "/fhir", "/fhir/", "/fhir/$meta"]))
    return method, path, params, headers, body


@pytest.fixture(scope="module")
def http(live: Api) -> Iterator[httpx.Client]:
    with live.client(timeout=30) as client:
        yield client


@settings(max_examples=EXAMPLES, deadline=None, derandomize=not LONG, database=None,
          suppress_health_check=list(HealthCheck), print_blob=True)
@given(request=fhir_requests())
def test_a_property_based_fhir_client_gets_no_5xx_and_every_error_is_an_operation_outcome(http, request):
    method, path, params, headers, body = request
    safe_path = "".join(c if c in string.printable and c not in "?#" else f"%{ord(c) & 0xFF:02X}" for c in path)
    try:
        response = http.request(method, safe_path, params=params, headers=headers, content=body)
    except (httpx.InvalidURL, httpx.LocalProtocolError, UnicodeEncodeError):
        return  # the client itself refuses to send it (e.g. a control character in a header)
    assert_fhir_response(response, method, safe_path)
