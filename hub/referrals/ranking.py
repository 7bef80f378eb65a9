"""Ranking candidates by the region's policy, with an explanation a person can read in the offer Task."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hub.referrals.intake import ReferralRequest
from hub.referrals.matching import Candidate
from hub.referrals.policy import RoutingPolicy


@dataclass(frozen=True)
class Ranked:
    candidate: Candidate
    score: float
    reasons: tuple[str, ...]

    def explain(self, position: int, total: int) -> str:
        return (f"Ranked {position} of {total}: {self.candidate.name} (score {self.score:.1f}; lower is better) — "
                + "; ".join(self.reasons))


def rank(candidates: list[Candidate], request: ReferralRequest, policy: RoutingPolicy,
         recent_offers: dict[str, int], now: datetime) -> list[Ranked]:
    """Score every candidate (see hub/referrals/policy.py for the formula) and sort best first."""
    ranked = [_score(c, request, policy, recent_offers.get(c.provider, 0), now) for c in candidates]
    return sorted(ranked, key=lambda r: (r.score, -(len(r.candidate.beds) or r.candidate.free), r.candidate.provider))


def _score(cand: Candidate, request: ReferralRequest, policy: RoutingPolicy, offers: int,
           now: datetime) -> Ranked:
    w = policy.weights
    score, reasons = 0.0, []
    km = policy.distance_km(request.postcode, cand.postcode)
    if km is None:
        score += policy.postcode_tiers_km[-1] * w.distance_per_km
        reasons.append("distance unknown (no postcode)")
    else:
        score += km * w.distance_per_km
        reasons.append(f"~{km:.0f} km from {request.postcode} to {cand.postcode}")
    if cand.provider in request.preferred:
        position = request.preferred.index(cand.provider) + 1
        score -= w.preferred_bonus / position
        reasons.append(f"preferred by the requester (#{position})")
    if cand.as_of is not None:
        hours = max(0.0, (now - cand.as_of).total_seconds() / 3600)
        score += hours * w.age_per_hour
        stale = now - cand.as_of > policy.stale_after
        score += w.stale_penalty if stale else 0.0
        reasons.append(f"availability {_age(hours)} old{' (stale)' if stale else ''}")
    if offers:
        score += offers * w.fairness_per_offer
        reasons.append(f"{offers} offer(s) in the last {policy.fairness_window.total_seconds() / 3600:.0f} h")
    if cand.kind == "count":
        score += w.count_only_penalty
        reasons.append(f"{cand.free} free by count (no bed-level data)")
    else:
        reasons.append(f"{len(cand.beds)} free bed(s)")
    if request.needs:
        reasons.append("meets needs: " + ", ".join(sorted(request.needs)))
    return Ranked(cand, round(score, 2), tuple(reasons))


def _age(hours: float) -> str:
    return f"{hours * 60:.0f} min" if hours < 2 else f"{hours:.0f} h"
