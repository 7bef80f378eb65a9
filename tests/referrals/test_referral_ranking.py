"""The ranking policy in isolation: each term moves a provider the documented way, and a JSON file overrides it."""

from __future__ import annotations

from datetime import datetime, timedelta

from hub.referrals.intake import ReferralRequest
from hub.referrals.matching import BedOption, Candidate
from hub.referrals.policy import RoutingPolicy, Weights
from hub.referrals.ranking import rank

NOW = datetime(2026, 11, 23, 12, 0)


def request(**kw: object) -> ReferralRequest:
    base = dict(sr_id="sr", product="elv-hoog", acute=True, priority="urgent", desired_start=None,
                postcode="9401 ZZ", needs=frozenset(), preferred=(), home_care_acceptable=True, needs_triage=False,
                subject=None, requester=None)
    return ReferralRequest(**{**base, **kw})  # type: ignore[arg-type]


def provider(ref: str, postcode: str, *, age: timedelta = timedelta(minutes=5), beds: int = 1) -> Candidate:
    return Candidate(ref, name=ref, postcode=postcode, as_of=NOW - age,
                     beds=[BedOption(f"{ref}-{n}", "bed") for n in range(beds)])


def order(candidates: list[Candidate], req: ReferralRequest | None = None, policy: RoutingPolicy | None = None,
          recent: dict[str, int] | None = None) -> list[str]:
    return [r.candidate.provider for r in rank(candidates, req or request(), policy or RoutingPolicy(),
                                               recent or {}, NOW)]


def test_nearer_postcode_ranks_first_then_preference_then_fairness_then_freshness():
    near, mid, far = provider("A", "9401 AB"), provider("B", "9470 CD"), provider("C", "7941 EF")
    assert order([far, mid, near]) == ["A", "B", "C"]
    assert order([far, mid, near], request(preferred=("B",))) == ["B", "A", "C"]  # 60 points ~ 60 km
    assert order([near, mid], recent={"A": 10}) == ["B", "A"]
    stale = provider("A", "9401 AB", age=timedelta(days=2))
    assert order([stale, mid]) == ["B", "A"]


def test_the_explanation_names_every_term():
    ranked = rank([provider("A", "9401 AB", beds=2)], request(preferred=("A",), needs=frozenset({"oxygen"})),
                  RoutingPolicy(), {"A": 1}, NOW)
    text = ranked[0].explain(1, 1)
    for part in ("Ranked 1 of 1", "km from 9401 ZZ", "preferred by the requester", "availability 5 min old",
                 "1 offer(s)", "2 free bed(s)", "meets needs: oxygen"):
        assert part in text


def test_a_geocoder_replaces_the_postcode_tiers_and_json_overrides_the_policy(tmp_path):
    spots = {"9401ZZ": (53.0, 6.56), "9401AB": (53.3, 6.56), "9999XX": (53.01, 6.56)}
    policy = RoutingPolicy(geocoder=spots.get)
    assert order([provider("A", "9401 AB"), provider("B", "9999 XX")], policy=policy) == ["B", "A"]
    path = tmp_path / "policy.json"
    path.write_text('{"acute_response": 15, "max_offers": 3, "weights": {"fairness_per_offer": 0},'
                    ' "home_alternatives": {"elv-hoog": ["wijkverpleging"]}}')
    loaded = RoutingPolicy.from_json(path)
    assert loaded.acute_response == timedelta(minutes=15) and loaded.max_offers == 3
    assert loaded.weights == Weights(fairness_per_offer=0)
    assert loaded.home_alternatives == {"elv-hoog": ("wijkverpleging",)}
    assert loaded.retry_delay(1) == timedelta(seconds=5) and loaded.retry_delay(3) == timedelta(seconds=20)
