"""The routing policy: ranking weights, response deadlines, cascade length, who the coordination point is.

One frozen dataclass per process in `runtime.extras["referrals.policy"]`; a region changes it with
`configure(runtime, RoutingPolicy(...))` or a JSON file of overrides (`RoutingPolicy.from_json`).

Ranking (lower score is better; every term is shown in the offer's explanation):
  score = distance_km * distance_per_km                       (patient postcode -> provider postcode)
        - preferred_bonus / position                          (providers the requester named, in their order)
        + age_hours * age_per_hour  (+ stale_penalty when older than stale_after)   (freshness of the figure)
        + offers_in_window * fairness_per_offer               (spread offers across providers)
        + count_only_penalty                                  (provider publishes counts, not beds)
Ties go to the provider with more free beds, then to the lower provider id (deterministic).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from hub.runtime import Runtime

Geocoder = Callable[[str], tuple[float, float] | None]  # postcode -> (lat, lon), e.g. a CBS PC4 centroid table


@dataclass(frozen=True)
class Weights:
    distance_per_km: float = 1.0
    preferred_bonus: float = 60.0
    age_per_hour: float = 0.5
    stale_penalty: float = 40.0
    fairness_per_offer: float = 4.0
    count_only_penalty: float = 10.0


@dataclass(frozen=True)
class RoutingPolicy:
    weights: Weights = field(default_factory=Weights)
    fairness_window: timedelta = timedelta(hours=24)
    stale_after: timedelta = timedelta(hours=24)
    acute_response: timedelta = timedelta(minutes=30)  # an acute offer must be answered within this
    planned_response: timedelta = timedelta(hours=4)
    accepted_hold: timedelta = timedelta(hours=24)  # an accepted bed stays reserved until admission + this
    max_offers: int = 8  # offers per referral before a person takes over
    coordinator_org: str = "http://fhir.nl/fhir/NamingSystem/ura|90000001"  # the coordination point (system|value)
    coordinator_name: str = "Coördinatiepunt"
    # "zo thuis mogelijk, tenzij…": home-care products shown beside the bed offers for each bed product
    home_alternatives: dict[str, tuple[str, ...]] = field(default_factory=lambda: {
        "elv-laag": ("wijkverpleging", "spoedzorg-thuis"),
        "elv-hoog": ("spoedzorg-thuis",),
        "elv-pall": ("wijkverpleging", "spoedzorg-thuis"),
        "wlz-crisis": ("spoedzorg-thuis",),
        "wmo-kv": ("wijkverpleging",),
        "wlz-logeer": ("wijkverpleging",),
    })
    # postcode proximity when no geocoder is set: same PC4, same first 3, 2, 1 digits, otherwise
    postcode_tiers_km: tuple[float, float, float, float, float] = (2.0, 6.0, 15.0, 40.0, 90.0)
    geocoder: Geocoder | None = None
    notify_max_attempts: int = 8  # then the delivery is dead-lettered and the Subscription set to error
    notify_backoff: timedelta = timedelta(seconds=5)  # first retry delay; doubled per attempt
    notify_backoff_cap: timedelta = timedelta(hours=1)
    notify_timeout_seconds: float = 10.0

    def response_window(self, acute: bool) -> timedelta:
        """How long a provider has to answer an offer."""
        return self.acute_response if acute else self.planned_response

    def retry_delay(self, attempts: int) -> timedelta:
        """Exponential backoff for notification retries: base * 2^(attempts-1), capped."""
        delay: timedelta = self.notify_backoff * (2 ** max(0, attempts - 1))
        return min(delay, self.notify_backoff_cap)

    def distance_km(self, from_postcode: str | None, to_postcode: str | None) -> float | None:
        """Distance between two postcodes: the geocoder when set, else the coarse proximity tiers."""
        a, b = normalise_postcode(from_postcode), normalise_postcode(to_postcode)
        if not a or not b:
            return None
        if self.geocoder is not None:
            pa, pb = self.geocoder(a), self.geocoder(b)
            if pa and pb:
                return haversine_km(pa, pb)
        for digits, km in zip((4, 3, 2, 1), self.postcode_tiers_km, strict=False):
            if a[:digits] == b[:digits]:
                return km
        return self.postcode_tiers_km[-1]

    @classmethod
    def from_json(cls, path: Path) -> RoutingPolicy:
        """Overrides from a JSON file: durations in minutes, weights as an object, the rest as is."""
        raw: dict[str, Any] = orjson.loads(path.read_bytes())
        policy = cls()
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in raw:
                continue
            value = raw[f.name]
            if f.name == "weights":
                value = replace(policy.weights, **value)
            elif isinstance(getattr(policy, f.name), timedelta):
                value = timedelta(minutes=float(value))
            elif f.name == "home_alternatives":
                value = {k: tuple(v) for k, v in value.items()}
            values[f.name] = value
        return replace(policy, **values)


def normalise_postcode(value: str | None) -> str:
    """'9401 ab' -> '9401AB'; only the digits matter for the proximity tiers."""
    return "".join((value or "").split()).upper()


def haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def policy_of(runtime: Runtime) -> RoutingPolicy:
    policy: RoutingPolicy = runtime.extras.setdefault("referrals.policy", RoutingPolicy())
    return policy


def configure(runtime: Runtime, policy: RoutingPolicy) -> None:
    """Install a region's policy (tests and deployments)."""
    runtime.extras["referrals.policy"] = policy
