"""The access framework: roles per type and organisation, filtering of searches and _include, SMART tokens."""

from __future__ import annotations

import time
import uuid

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import insert

from hub.store.schema import audit_log, clients, resources

AGB = "http://fhir.nl/fhir/NamingSystem/agb-z"
GP = f"{AGB}|01000001"
VVT_A = f"{AGB}|73730001"
VVT_B = f"{AGB}|73730002"
GEMEENTE = "https://zorgnet-hub.nl/fhir/NamingSystem/gemeentecode|0106"


async def test_provider_cannot_change_another_providers_location(hub, location_factory):
    created = await hub.client.post(
        "/fhir/Location", json=location_factory("A's bed"), headers=hub.headers("vvt-provider", VVT_A)
    )
    assert created.status_code == 201
    body = created.json()
    r = await hub.client.put(
        f"/fhir/Location/{body['id']}", json={**body, "name": "hijacked"}, headers=hub.headers("vvt-provider", VVT_B)
    )
    assert r.status_code == 403 and r.json()["issue"][0]["code"] == "forbidden"
    assert (await hub.client.get(f"/fhir/Location/{body['id']}", headers=hub.headers())).json()["name"] == "A's bed"


async def test_role_may_not_write_type(hub):
    r = await hub.client.post(
        "/fhir/Condition",
        json={"resourceType": "Condition", "subject": {"reference": "Patient/x"}},
        headers=hub.headers("municipality", GEMEENTE),
    )
    assert r.status_code == 403


async def test_municipality_never_sees_medical_resources_even_via_include(hub):
    gp = hub.headers("gp", GP)
    patient = (
        await hub.client.post(
            "/fhir/Patient", json={"resourceType": "Patient", "name": [{"family": "Smit"}]}, headers=gp
        )
    ).json()
    cond = {
        "resourceType": "Condition",
        "subject": {"reference": f"Patient/{patient['id']}"},
        "code": {"text": "dementie"},
    }
    condition = (await hub.client.post("/fhir/Condition", json=cond, headers=gp)).json()
    muni = hub.headers("municipality", GEMEENTE)
    assert (await hub.client.get(f"/fhir/Condition/{condition['id']}", headers=muni)).status_code == 404
    assert (await hub.client.get("/fhir/Condition", headers=muni)).json().get("total") == 0
    rev = (
        await hub.client.get(f"/fhir/Patient?_id={patient['id']}&_revinclude=Condition:subject", headers=muni)
    ).json()
    assert [e["resource"]["resourceType"] for e in rev["entry"]] == ["Patient"]
    chained = (await hub.client.get("/fhir/Condition?subject.name=Smit", headers=muni)).json()
    assert chained.get("total") == 0
    # the same request as a GP includes the Condition
    rev_gp = (
        await hub.client.get(f"/fhir/Patient?_id={patient['id']}&_revinclude=Condition:subject", headers=gp)
    ).json()
    assert sorted(e["resource"]["resourceType"] for e in rev_gp["entry"]) == ["Condition", "Patient"]


async def test_municipality_sees_social_domain_service_request_only(hub):
    gp = hub.headers("gp", GP)
    medical = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "reasonCode": [{"text": "delier"}],
    }
    social = {
        **medical,
        "meta": {"tag": [{"system": "https://zorgnet-hub.nl/fhir/CodeSystem/data-domain", "code": "social"}]},
        "reasonCode": [],
    }
    social.pop("reasonCode")
    assert (await hub.client.post("/fhir/ServiceRequest", json=medical, headers=gp)).status_code == 201
    muni = hub.headers("municipality", GEMEENTE)
    assert (await hub.client.post("/fhir/ServiceRequest", json=social, headers=muni)).status_code == 201
    visible = (await hub.client.get("/fhir/ServiceRequest", headers=muni)).json()
    assert visible["total"] == 1 and "reasonCode" not in visible["entry"][0]["resource"]
    # and a municipality cannot write an untagged (medical) one
    assert (await hub.client.post("/fhir/ServiceRequest", json=medical, headers=muni)).status_code == 403


async def test_coordinator_reads_referrals_but_not_clinical_resources(hub):
    gp = hub.headers("gp", GP)
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "bp"},
        "subject": {"reference": "Patient/p2"},
    }
    created = (await hub.client.post("/fhir/Observation", json=obs, headers=gp)).json()
    coord = hub.headers("coordinator", "http://fhir.nl/fhir/NamingSystem/ura|90000001")
    assert (await hub.client.get(f"/fhir/Observation/{created['id']}", headers=coord)).status_code == 404
    refused = await hub.count(audit_log, audit_log.c.outcome == "4")
    assert refused >= 1  # the refused read of personal data is itself logged


async def test_search_of_personal_data_is_audited_in_the_same_request(hub):
    gp = hub.headers("gp", GP)
    await hub.client.post("/fhir/Patient", json={"resourceType": "Patient", "name": [{"family": "Audit"}]}, headers=gp)
    before = await hub.count(audit_log)
    r = await hub.client.get("/fhir/Patient?family=Audit", headers=gp)
    assert r.json()["total"] == 1
    assert await hub.count(audit_log) == before + 1
    # directory searches carry no personal data and write no audit event
    await hub.client.get("/fhir/Organization", headers=gp)
    assert await hub.count(audit_log) == before + 1


async def test_smart_backend_services_client_credentials(hub):
    key = ec.generate_private_key(ec.SECP384R1())
    public_jwk = orjson.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    public_jwk["kid"] = "k1"
    async with hub.runtime.engine.begin() as conn:
        await conn.execute(
            insert(clients).values(
                client_id="ehr-noorderboog",
                org=VVT_A,
                role="vvt-provider",
                jwks=orjson.dumps({"keys": [public_jwk]}),
                name="EHR",
                active=True,
            )
        )
    token_url = f"{hub.settings.base_url}/auth/token"

    def assertion(**override) -> str:
        claims = {
            "iss": "ehr-noorderboog",
            "sub": "ehr-noorderboog",
            "aud": token_url,
            "exp": int(time.time()) + 120,
            "jti": str(uuid.uuid4()),
            **override,
        }
        return jwt.encode(claims, key, algorithm="ES384", headers={"kid": "k1"})

    form = {
        "grant_type": "client_credentials",
        "scope": "system/*.read",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    }
    signed = assertion()
    r = await hub.client.post("/auth/token", data={**form, "client_assertion": signed})
    assert r.status_code == 200, r.text
    access = r.json()["access_token"]
    me = await hub.client.post(
        "/fhir/Location",
        json={"resourceType": "Location", "name": "via SMART"},
        headers={"Authorization": f"Bearer {access}", "Content-Type": "application/fhir+json"},
    )
    assert me.status_code == 201
    owner = await hub.scalar(
        resources.select().with_only_columns(resources.c.owner_org).where(resources.c.res_id == me.json()["id"])
    )
    assert owner == VVT_A
    replay = await hub.client.post("/auth/token", data={**form, "client_assertion": signed})
    assert replay.status_code == 401
    wrong_aud = await hub.client.post("/auth/token", data={**form, "client_assertion": assertion(aud="http://evil")})
    assert wrong_aud.status_code == 401
    other_key = ec.generate_private_key(ec.SECP384R1())
    forged = jwt.encode(
        {
            "iss": "ehr-noorderboog",
            "sub": "ehr-noorderboog",
            "aud": token_url,
            "exp": int(time.time()) + 60,
            "jti": "x",
        },
        other_key,
        algorithm="ES384",
        headers={"kid": "k1"},
    )
    assert (await hub.client.post("/auth/token", data={**form, "client_assertion": forged})).status_code == 401


@pytest.mark.parametrize("role", ["vvt-provider", "coordinator", "municipality"])
async def test_roles_without_medical_write_rights_are_refused_for_consent(hub, role):
    body = {"resourceType": "Consent", "status": "active", "scope": {"text": "x"}, "category": [{"text": "y"}]}
    org = GEMEENTE if role == "municipality" else VVT_A
    r = await hub.client.post("/fhir/Consent", json=body, headers=hub.headers(role, org))
    assert r.status_code in (201, 403)
    if role != "vvt-provider":
        assert r.status_code == 403
