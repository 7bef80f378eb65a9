"""Referral errors: each says what went wrong and leaves as an OperationOutcome with its status."""

from __future__ import annotations

from hub.errors import BusinessRule, Conflict, Forbidden, Invalid


class NotAnOffer(BusinessRule):
    """$accept/$decline on a Task that is not a provider offer (422)."""


class OfferNotOpen(Conflict):
    """The offer was already answered, expired or cancelled (409)."""


class ReferralNotActive(Conflict):
    """The referral is already placed or cancelled, or is not in a state that allows this (409)."""


class ReferralChanged(Conflict):
    """Another transition of the same referral won the race; nothing was written (409)."""


class NotOfferOwner(Forbidden):
    """Only the organisation an offer is addressed to may accept or decline it (403)."""


class NotRequester(Forbidden):
    """Only the requesting organisation or the coordination point may cancel (403)."""


class BedNotAvailable(Conflict):
    """The bed named in an acceptance is not free for this offer (409)."""


class MissingParameter(Invalid):
    """An operation parameter is missing or malformed (400)."""


class ManagedByReferrals(Conflict):
    """Referral and offer Tasks change only through $accept/$decline/$cancel (409)."""
