"""The FHIR Tasks of a referral: one referral Task the requester follows (owner: the coordination point) and
one offer Task per provider asked (owner: that provider; BSeR-style businessStatus; deadline in restriction)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hub.referrals import vocabulary as v
from hub.referrals.intake import ReferralRequest
from hub.referrals.matching import Candidate, HomeOption
from hub.referrals.policy import RoutingPolicy
from hub.store.sql import instant

FULFILL = {"coding": [{"system": v.TASK_CODE, "code": "fulfill", "display": "Fulfill the focal request"}]}


def _common(request: ReferralRequest, now: datetime) -> dict[str, Any]:
    common: dict[str, Any] = {
        "resourceType": "Task", "intent": "order", "priority": request.priority, "code": FULFILL,
        "basedOn": [{"reference": f"ServiceRequest/{request.sr_id}"}],
        "focus": {"reference": f"ServiceRequest/{request.sr_id}"},
        "authoredOn": instant(now), "lastModified": instant(now),
    }
    if request.subject:
        common["for"] = request.subject
    if request.requester:
        common["requester"] = request.requester
    return common


def referral_task(task_id: str, request: ReferralRequest, policy: RoutingPolicy, now: datetime) -> dict[str, Any]:
    """The Task the requester reads and subscribes to: where the referral is, and where the patient goes."""
    system, _, value = policy.coordinator_org.partition("|")
    what = request.product or "a person to triage"
    return {
        **_common(request, now), "id": task_id,
        "identifier": [{"system": v.REFERRAL_TASK_SYSTEM, "value": request.sr_id}],
        "status": "in-progress", "businessStatus": v.business_status("routing"),
        "description": f"Find a bed ({what}) for ServiceRequest/{request.sr_id}",
        "owner": {"identifier": {"system": system, "value": value}, "display": policy.coordinator_name},
    }


def offer_task(offer_id: str, number: int, request: ReferralRequest, referral_task_id: str, cand: Candidate,
               held: dict[str, Any], explanation: str, deadline: datetime, now: datetime) -> dict[str, Any]:
    """An offer to one provider, holding one bed (or one counted place) until `deadline`."""
    return {
        **_common(request, now), "id": offer_id,
        "identifier": [{"system": v.OFFER_SYSTEM, "value": f"{request.sr_id}/{number}"}],
        "partOf": [{"reference": f"Task/{referral_task_id}"}],
        "status": "requested", "businessStatus": v.business_status("offered"),
        "description": f"Bed offer {number} for ServiceRequest/{request.sr_id}: please accept or decline",
        "owner": {"reference": cand.provider, "display": cand.name},
        "statusReason": {"text": explanation},
        "restriction": {"period": {"start": instant(now), "end": instant(deadline)}},
        "input": [held, {"type": {"text": v.RANKING}, "valueString": explanation}],
    }


def held_input(cand: Candidate, bed_id: str | None, bed_name: str | None) -> dict[str, Any]:
    if bed_id:
        return {"type": {"text": v.RESERVED_BED}, "valueReference": {"reference": f"Location/{bed_id}",
                                                                      "display": bed_name or bed_id}}
    return {"type": {"text": "held-place"}, "valueReference": {"reference": f"HealthcareService/{cand.service_id}",
                                                              "display": f"1 of {cand.free} free (count)"}}


def home_inputs(options: list[HomeOption]) -> list[dict[str, Any]]:
    """'Zo thuis mogelijk': home-care intake shown beside the bed offers."""
    return [{"type": {"text": v.HOME_AVAILABLE},
             "valueReference": {"reference": f"HealthcareService/{o.service_id}",
                                "display": f"{o.name} ({o.provider}): {o.free} intake place(s)"}} for o in options]


def with_state(task: dict[str, Any], *, status: str, state: str, now: datetime, reason: str | None = None,
               **extra: Any) -> dict[str, Any]:
    """The same Task with a new status/businessStatus (and optional statusReason, output, note, input)."""
    out = {**task, "status": status, "businessStatus": v.business_status(state), "lastModified": instant(now),
           **extra}
    if reason is not None:
        out["statusReason"] = {"text": reason}
    return out


def outputs(bed_id: str | None, bed_display: str | None, admission: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"type": {"text": v.ADMISSION}, "valueDateTime": admission}]
    if bed_id:
        out.insert(0, {"type": {"text": v.ACCEPTED_BED},
                       "valueReference": {"reference": f"Location/{bed_id}", "display": bed_display or bed_id}})
    return out
