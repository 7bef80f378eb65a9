"""The referral flow over HTTP on SQLite and PostgreSQL: intake, offer with a reserved bed, accept, decline and
deadline cascades, exhaustion to a person, cancellation releasing everything held."""

from __future__ import annotations

from datetime import timedelta

from referral_factories import (
    COORDINATOR_ORG,
    GP_ORG,
    offer_rows,
    params,
    post_referral,
    provider_headers,
    referral,
    resource,
    row,
    settle,
)
from sqlalchemy import select

from hub.referrals import vocabulary as v
from hub.referrals.reservations import reserved_for
from hub.referrals.tables import referrals
from hub.referrals.tasks import expire_due_offers
from hub.store.schema import outbox, resources
from hub.worker import utcnow


async def test_incomplete_referral_is_422_naming_each_missing_field_and_stores_nothing(hub, region):
    sr = referral(priority=None, extension=None, requester=None)
    r = await hub.client.post("/fhir/ServiceRequest", json=sr, headers=hub.headers("gp", GP_ORG))
    assert r.status_code == 422
    body = r.json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == "processing"
    expressions = {e for i in body["issue"] for e in i.get("expression", [])}
    assert {"ServiceRequest.requester", "ServiceRequest.priority", "ServiceRequest.extension"} <= expressions
    assert await hub.count(referrals) == 0
    assert await hub.count(resources, resources.c.res_type.in_(("ServiceRequest", "Task"))) == 0
    unknown = await hub.client.post("/fhir/ServiceRequest", json=referral("elv-extra"),
                                    headers=hub.headers("gp", GP_ORG))
    assert unknown.status_code == 422 and "Unknown care product" in unknown.json()["issue"][0]["diagnostics"]


async def test_happy_path_offer_reserves_nearest_bed_and_accept_places_the_patient(hub, region):
    sr = await post_referral(hub)
    ref = await row(hub, sr["id"])
    assert ref.state == "offered" and ref.offers == 1
    offer = await resource(hub, "Task", ref.offer_id)
    assert offer["status"] == "requested" and offer["intent"] == "order"
    assert offer["code"]["coding"][0]["code"] == "fulfill"
    assert offer["focus"] == {"reference": f"ServiceRequest/{sr['id']}"}
    assert offer["owner"]["reference"] == region.org_ref("73730001")  # same PC4 as the patient
    assert {c["code"] for c in offer["businessStatus"]["coding"]} == {"2.0", "offered"}
    assert offer["restriction"]["period"]["end"] > offer["restriction"]["period"]["start"]
    assert offer["statusReason"]["text"].startswith("Ranked 1 of 3")
    bed_id = region.beds["73730001"][0]
    bed = await resource(hub, "Location", bed_id)
    assert reserved_for(bed) == f"Task/{ref.offer_id}" and bed["operationalStatus"]["code"] == "reserved"
    tracking = await resource(hub, "Task", ref.task_id)
    assert tracking["status"] == "in-progress" and "Ranking:" in tracking["note"][0]["text"]
    homes = [i for i in tracking["input"] if i["type"]["text"] == v.HOME_AVAILABLE]
    assert homes and "Thuiszorg Assen" in homes[0]["valueReference"]["display"]  # zo thuis mogelijk

    r = await hub.client.post(f"/fhir/Task/{ref.offer_id}/$accept", json=params(admission="2026-11-24T10:00:00Z"),
                              headers=provider_headers(hub, "73730001"))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "accepted" and r.headers["etag"] == 'W/"2"'
    assert (await row(hub, sr["id"])).state == "accepted"
    tracking = await resource(hub, "Task", ref.task_id)
    assert tracking["status"] == "completed"
    assert {o["type"]["text"] for o in tracking["output"]} == {v.ACCEPTED_BED, v.ADMISSION}
    assert reserved_for(await resource(hub, "Location", bed_id)) == f"Task/{ref.offer_id}"
    gp_view = await hub.client.get(f"/fhir/Task?focus=ServiceRequest/{sr['id']}", headers=hub.headers("gp", GP_ORG))
    assert {e["resource"]["status"] for e in gp_view.json()["entry"]} == {"accepted", "completed"}


async def test_decline_releases_the_bed_and_cascades_to_the_next_provider(hub, region):
    sr = await post_referral(hub)
    first = (await row(hub, sr["id"])).offer_id
    missing_reason = await hub.client.post(f"/fhir/Task/{first}/$decline", json=params(),
                                           headers=provider_headers(hub, "73730001"))
    assert missing_reason.status_code == 400
    r = await hub.client.post(f"/fhir/Task/{first}/$decline", json=params(reason="geen tillift"),
                              headers=provider_headers(hub, "73730001"))
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    assert r.json()["statusReason"]["text"] == "geen tillift"
    await settle(hub)
    bed = await resource(hub, "Location", region.beds["73730001"][0])
    assert reserved_for(bed) is None and bed["operationalStatus"]["code"] == "U"
    ref = await row(hub, sr["id"])
    assert ref.state == "offered" and ref.offers == 2 and ref.offer_id != first
    second = await resource(hub, "Task", ref.offer_id)
    assert second["owner"]["reference"] == region.org_ref("73730002")
    assert [o.state for o in await offer_rows(hub, sr["id"])] == ["declined", "open"]


async def test_deadline_expiry_cascades_and_the_deadline_is_a_durable_outbox_row(hub, region):
    sr = await post_referral(hub, referral(priority="routine"))
    ref = await row(hub, sr["id"])
    async with hub.runtime.engine.connect() as conn:
        due = (await conn.execute(select(outbox.c.due).where(outbox.c.task == "referrals.expire_offer",
                                                             outbox.c.completed.is_(None)))).scalars().all()
    assert len(due) == 1 and abs((due[0] - ref.deadline).total_seconds()) < 2  # planned: 4 h to answer
    assert await expire_due_offers(hub.runtime, utcnow()) == 0  # not yet due: nothing happens
    assert await expire_due_offers(hub.runtime, ref.deadline + timedelta(seconds=1)) == 1
    await settle(hub)
    expired = await resource(hub, "Task", ref.offer_id)
    assert expired["status"] == "failed" and expired["businessStatus"]["coding"][-1]["code"] == "expired"
    assert reserved_for(await resource(hub, "Location", region.beds["73730001"][0])) is None
    now = await row(hub, sr["id"])
    assert now.state == "offered" and now.offers == 2
    late = await hub.client.post(f"/fhir/Task/{ref.offer_id}/$accept", json=params(admission="2026-12-01"),
                                 headers=provider_headers(hub, "73730001"))
    assert late.status_code == 409 and late.json()["issue"][0]["code"] == "conflict"


async def test_exhausted_list_puts_the_referral_with_the_coordination_point(hub, region):
    sr = await post_referral(hub)
    for agb in ("73730001", "73730002", "73730003"):
        offer = (await row(hub, sr["id"])).offer_id
        r = await hub.client.post(f"/fhir/Task/{offer}/$decline", json=params(reason="vol"),
                                  headers=provider_headers(hub, agb))
        assert r.status_code == 200, (agb, r.text)
        await settle(hub)
    ref = await row(hub, sr["id"])
    assert ref.state == "needs-person" and ref.offer_id is None
    tracking = await resource(hub, "Task", ref.task_id)
    assert tracking["status"] == "on-hold" and "coordination point" in tracking["statusReason"]["text"]
    waiting = await hub.client.get(f"/fhir/Task?business-status={v.ROUTING_STATUS}|needs-person",
                                   headers=hub.headers("coordinator", COORDINATOR_ORG))
    assert [e["resource"]["id"] for e in waiting.json()["entry"]] == [ref.task_id]
    for bed_ids in region.beds.values():
        for bed_id in bed_ids:
            assert reserved_for(await resource(hub, "Location", bed_id)) is None
    again = await hub.client.post(f"/fhir/ServiceRequest/{sr['id']}/$route",
                                  headers=hub.headers("coordinator", COORDINATOR_ORG))
    assert again.status_code == 200 and again.json()["status"] == "in-progress"
    await settle(hub)
    assert (await row(hub, sr["id"])).state == "offered"


async def test_cancel_by_the_requester_releases_everything_and_revokes_the_request(hub, region):
    sr = await post_referral(hub)
    ref = await row(hub, sr["id"])
    stranger = await hub.client.post(f"/fhir/Task/{ref.task_id}/$cancel", headers=provider_headers(hub, "73730002"))
    assert stranger.status_code == 403 and stranger.json()["issue"][0]["code"] == "forbidden"
    r = await hub.client.post(f"/fhir/Task/{ref.task_id}/$cancel", json=params(reason="opgenomen in ziekenhuis"),
                              headers=hub.headers("gp", GP_ORG))
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    await settle(hub)
    assert (await row(hub, sr["id"])).state == "cancelled"
    assert (await resource(hub, "Task", ref.offer_id))["status"] == "cancelled"
    assert reserved_for(await resource(hub, "Location", region.beds["73730001"][0])) is None
    assert (await resource(hub, "ServiceRequest", sr["id"]))["status"] == "revoked"
    twice = await hub.client.post(f"/fhir/Task/{ref.task_id}/$cancel", headers=hub.headers("gp", GP_ORG))
    assert twice.status_code == 409


async def test_revoking_the_service_request_withdraws_an_accepted_placement(hub, region):
    sr = await post_referral(hub)
    ref = await row(hub, sr["id"])
    accepted = await hub.client.post(f"/fhir/Task/{ref.offer_id}/$accept", json=params(admission="2026-11-24"),
                                     headers=provider_headers(hub, "73730001"))
    assert accepted.status_code == 200
    current = await resource(hub, "ServiceRequest", sr["id"])
    r = await hub.client.put(f"/fhir/ServiceRequest/{sr['id']}", json={**current, "status": "revoked"},
                             headers=hub.headers("gp", GP_ORG))
    assert r.status_code == 200, r.text
    assert (await row(hub, sr["id"])).state == "cancelled"
    assert reserved_for(await resource(hub, "Location", region.beds["73730001"][0])) is None


async def test_needs_and_preferences_shape_the_ranking(hub, region):
    sr = await post_referral(hub, referral(needs=("oxygen",), preferred=(region.org_ref("73730002"),)))
    offer = await resource(hub, "Task", (await row(hub, sr["id"])).offer_id)
    assert offer["owner"]["reference"] == region.org_ref("73730002")
    assert "preferred by the requester" in offer["statusReason"]["text"]
    assert "Ranked 1 of 2" in offer["statusReason"]["text"]  # Meppel has no oxygen
    dementia = await post_referral(hub, referral(needs=("dementia-capable", "bariatric")))
    assert (await row(hub, dementia["id"])).state == "needs-person"


async def test_triage_referral_without_product_goes_straight_to_a_person(hub, region):
    sr = referral(None, category=[{"coding": [{"system": v.TRIAGE, "code": "needs-triage"}]}])
    created = await post_referral(hub, sr)
    ref = await row(hub, created["id"])
    assert ref.state == "needs-person" and ref.offers == 0


async def test_operations_are_listed_in_the_capability_statement(hub):
    cap = (await hub.client.get("/fhir/metadata")).json()
    ops = {r["type"]: {o["name"] for o in r.get("operation", [])} for r in cap["rest"][0]["resource"]}
    assert {"accept", "decline", "cancel"} <= ops["Task"]
    assert "route" in ops["ServiceRequest"] and "set-secret" in ops["Subscription"]


async def test_triage_flag_in_meta_tag_relaxes_the_rule_and_social_requests_are_not_routed(hub, region):
    letter = referral(priority=None, extension=None, category=None,
                      meta={"tag": [{"system": v.TRIAGE, "code": "needs-triage"}]})  # e.g. a MEDVRI letter
    created = await post_referral(hub, letter)
    assert (await row(hub, created["id"])).state == "needs-person"
    social = referral("wmo-kv", priority=None, extension=None, category=None, intent="proposal",
                      meta={"tag": [{"system": v.DATA_DOMAIN, "code": "social"}]})  # iWmo: the gemeente assigns
    r = await hub.client.post("/fhir/ServiceRequest", json=social, headers=hub.headers("coordinator", COORDINATOR_ORG))
    assert r.status_code == 201, r.text
    assert await row(hub, r.json()["id"]) is None


async def test_the_gp_named_as_requester_may_cancel_what_the_coordination_point_submitted(hub, region):
    r = await hub.client.post("/fhir/ServiceRequest", json=referral(),
                              headers=hub.headers("coordinator", COORDINATOR_ORG))
    assert r.status_code == 201
    await settle(hub)
    ref = await row(hub, r.json()["id"])
    assert ref.requester_org == COORDINATOR_ORG
    cancel = await hub.client.post(f"/fhir/Task/{ref.task_id}/$cancel", headers=hub.headers("gp", GP_ORG))
    assert cancel.status_code == 200 and (await row(hub, ref.sr_id)).state == "cancelled"


async def test_the_deadline_outbox_row_expires_the_offer_when_the_relay_finds_it_due(hub, region):
    from dataclasses import replace

    from hub.referrals.policy import configure, policy_of
    from hub.worker import relay_due

    before = policy_of(hub.runtime)
    configure(hub.runtime, replace(before, acute_response=timedelta(0)))  # due at once: no waiting
    try:
        sr = await post_referral(hub)
        first = (await row(hub, sr["id"])).offer_id
        await relay_due(hub.runtime)  # what the relay loop (or a hub after a restart) does with due rows
        await settle(hub)
    finally:
        configure(hub.runtime, before)
    assert (await resource(hub, "Task", first))["status"] == "failed"
    assert (await row(hub, sr["id"])).offers >= 2
