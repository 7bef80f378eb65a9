"""The server enforces the offer state machine: wrong party 403, second answer 409, stale If-Match 412, direct
Task writes refused — and a refused transition leaves the database exactly as it was."""

from __future__ import annotations

from typing import Any

from referral_factories import (
    AGB,
    COORDINATOR_ORG,
    GP_ORG,
    Provider,
    load_region,
    offer_rows,
    params,
    post_referral,
    provider_headers,
    referral,
    resource,
    row,
)

from hub.referrals.reservations import reserved_for


async def snapshot(hub: Any, sr_id: str, bed_ids: list[str]) -> tuple[Any, ...]:
    ref = await row(hub, sr_id)
    offer = await resource(hub, "Task", ref.offer_id)
    beds = [await resource(hub, "Location", b) for b in bed_ids]
    return (tuple(ref), offer["meta"]["versionId"], offer["status"], [b["meta"]["versionId"] for b in beds],
            [tuple(o) for o in await offer_rows(hub, sr_id)])


async def test_only_the_owner_answers_and_refusals_write_nothing(hub, region):
    sr = await post_referral(hub)
    offer_id = (await row(hub, sr["id"])).offer_id
    beds = region.beds["73730001"]
    before = await snapshot(hub, sr["id"], beds)
    body = params(admission="2026-11-24T10:00:00Z")
    for headers in (hub.headers("gp", GP_ORG), provider_headers(hub, "73730002"),
                    hub.headers("coordinator", COORDINATOR_ORG)):
        r = await hub.client.post(f"/fhir/Task/{offer_id}/$accept", json=body, headers=headers)
        assert r.status_code == 403 and r.json()["issue"][0]["code"] == "forbidden"
        d = await hub.client.post(f"/fhir/Task/{offer_id}/$decline", json=params(reason="x"), headers=headers)
        assert d.status_code == 403
    assert await snapshot(hub, sr["id"], beds) == before


async def test_stale_if_match_is_412_and_writes_nothing(hub, region):
    sr = await post_referral(hub)
    offer_id = (await row(hub, sr["id"])).offer_id
    beds = region.beds["73730001"]
    before = await snapshot(hub, sr["id"], beds)
    r = await hub.client.post(f"/fhir/Task/{offer_id}/$accept", json=params(admission="2026-11-24"),
                              headers={**provider_headers(hub, "73730001"), "If-Match": 'W/"7"'})
    assert r.status_code == 412 and r.json()["issue"][0]["code"] == "conflict"
    assert await snapshot(hub, sr["id"], beds) == before
    ok = await hub.client.post(f"/fhir/Task/{offer_id}/$accept", json=params(admission="2026-11-24"),
                               headers={**provider_headers(hub, "73730001"), "If-Match": 'W/"1"'})
    assert ok.status_code == 200 and ok.headers["etag"] == 'W/"2"'


async def test_second_accept_is_409_and_writes_nothing(hub, region):
    sr = await post_referral(hub)
    offer_id = (await row(hub, sr["id"])).offer_id
    headers = provider_headers(hub, "73730001")
    first = await hub.client.post(f"/fhir/Task/{offer_id}/$accept", json=params(admission="2026-11-24"),
                                  headers=headers)
    assert first.status_code == 200
    before = await snapshot(hub, sr["id"], region.beds["73730001"])
    for op, body in (("$accept", params(admission="2026-11-25")), ("$decline", params(reason="toch niet"))):
        again = await hub.client.post(f"/fhir/Task/{offer_id}/{op}", json=body, headers=headers)
        assert again.status_code == 409 and again.json()["issue"][0]["code"] == "conflict"
    assert await snapshot(hub, sr["id"], region.beds["73730001"]) == before


async def test_accept_of_a_bed_that_is_not_free_is_409_and_another_free_bed_can_be_chosen(hub):
    region = await load_region(hub, [Provider("73730001", "Noorderboog (test)", "9401 AB", {"elv-hoog": "UUO"})])
    sr = await post_referral(hub)
    offer_id = (await row(hub, sr["id"])).offer_id
    free_a, free_b, occupied = region.beds["73730001"]
    reserved = (await offer_rows(hub, sr["id"]))[0].bed_id
    other = free_b if reserved == free_a else free_a
    headers = provider_headers(hub, "73730001")
    busy = await hub.client.post(f"/fhir/Task/{offer_id}/$accept", headers=headers,
                                 json=params(admission="2026-11-24", location=f"Location/{occupied}"))
    assert busy.status_code == 409
    assert reserved_for(await resource(hub, "Location", reserved)) == f"Task/{offer_id}"
    moved = await hub.client.post(f"/fhir/Task/{offer_id}/$accept", headers=headers,
                                  json=params(admission="2026-11-24", location=f"Location/{other}"))
    assert moved.status_code == 200, moved.text
    assert reserved_for(await resource(hub, "Location", other)) == f"Task/{offer_id}"
    assert reserved_for(await resource(hub, "Location", reserved)) is None


async def test_direct_writes_of_referral_tasks_are_refused(hub, region):
    sr = await post_referral(hub)
    offer_id = (await row(hub, sr["id"])).offer_id
    offer = await resource(hub, "Task", offer_id)
    put = await hub.client.put(f"/fhir/Task/{offer_id}", json={**offer, "status": "accepted"},
                               headers=provider_headers(hub, "73730001"))
    assert put.status_code == 409 and "$accept" in put.json()["issue"][0]["diagnostics"]
    forged = {k: val for k, val in offer.items() if k not in ("id", "meta")}
    post = await hub.client.post("/fhir/Task", json=forged, headers=provider_headers(hub, "73730002"))
    assert post.status_code == 409
    assert (await resource(hub, "Task", offer_id))["status"] == "requested"


async def test_non_offer_task_and_unknown_task_are_refused(hub, region):
    sr = await post_referral(hub)
    task_id = (await row(hub, sr["id"])).task_id
    r = await hub.client.post(f"/fhir/Task/{task_id}/$accept", json=params(admission="2026-11-24"),
                              headers=provider_headers(hub, "73730001"))
    assert r.status_code == 422 and r.json()["issue"][0]["code"] == "business-rule"
    missing = await hub.client.post("/fhir/Task/nope/$accept", json=params(admission="2026-11-24"),
                                    headers=provider_headers(hub, "73730001"))
    assert missing.status_code == 404


async def test_count_only_provider_is_held_by_a_conditional_update_never_beyond_its_free_count(hub):
    region = await load_region(hub, [Provider("73730020", "Telt alleen (test)", "9401 AB", counts={"elv-hoog": 1})])
    first = await post_referral(hub, referral(postcode="9401 AB"))
    second = await post_referral(hub, referral(postcode="9401 AB"))
    states = sorted([(await row(hub, first["id"])).state, (await row(hub, second["id"])).state])
    assert states == ["needs-person", "offered"]
    holder = first if (await row(hub, first["id"])).state == "offered" else second
    offer = await resource(hub, "Task", (await row(hub, holder["id"])).offer_id)
    assert offer["input"][0]["valueReference"]["reference"] == f"HealthcareService/{region.services['73730020'][0]}"
    declined = await hub.client.post(f"/fhir/Task/{offer['id']}/$decline", json=params(reason="vol"),
                                     headers=hub.headers("vvt-provider", f"{AGB}|73730020"))
    assert declined.status_code == 200
