"""Bed status changes ($set-status) of concurrent requests, written together.

Why: every EHR pushes each bed change, so this is the hub's most frequent write, and it always has the same shape.
Written one by one, each change cost a bed read, a compare-and-set with its index rows, and a read and a
compare-and-set of its source row (~3 ms of the API process per request). Here, for the requests of one
group-commit batch (hub/store/group_commit.py `Together`):
1. the beds' current rows are read in one statement (on PostgreSQL locked in id order, so batches of two API
   processes cannot deadlock on them), joined with their source rows and providers (bed_rows.py);
2. each change is decided in Python exactly as a lone request decides it: unknown bed 404, deleted 410, not a
   bed 422, another provider's bed 403, stale If-Match 412, an unknown code 400, the same status again is a
   confirmation that only refreshes the figure's freshness — a refused change writes nothing and the others go on;
3. the changed beds are written with their source rows and the aggregate in one statement on PostgreSQL
   (repository.update_many with aggregate.plan_status_changes as `also`: versions, the `operational-status`
   index rows replaced in place, the source rows' compare-and-set, the aggregate rows' and totals' upserts,
   which come back to be published); on SQLite the source rows follow one by one and the increments join those
   of the unit of work (one upsert per row before COMMIT), as the write hook would do for each.
A bed changed twice in one batch is written in a second round on top of the first. A bed whose stored source row
does not match it (never counted yet, moved meanwhile) takes the general write hook instead.

On PostgreSQL a round is first tried without step 1 (`_remembered_round`): decided on the beds, source rows and
providers as this process last saw them committed (bed_memo.py), and written with the same statement, which then
checks before it changes anything that all of them are still so (raw.Also guard) and otherwise writes nothing —
the round then goes the way above. When the batch is nothing but plain status changes and its unit of work writes
nothing else, that statement commits by itself (no BEGIN, read or COMMIT round trip: measured 1,500 -> 1,950
$set-status/s with two such batches side by side).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from hub.availability import aggregate, subscriptions
from hub.availability import vocabulary as v
from hub.availability.bed_memo import BedMemo, Remembered, memo_of
from hub.availability.bed_rows import read_beds
from hub.availability.errors import NotABed, SourceChanged, UnknownBedStatus
from hub.availability.figures import BedFacts, Figures, bed_facts, bed_status
from hub.availability.hooks import on_write
from hub.availability.publish import publish
from hub.availability.service import check_owner
from hub.availability.sources import directory_for
from hub.errors import Gone, HubError, NotFound, PreconditionFailed
from hub.fhir.validation import check_rules
from hub.security import policy
from hub.security.context import AccessContext
from hub.store.group_commit import Refused, Together
from hub.store.repository import StoredResource, WriteResult
from hub.store.sql import PreparedUpdate, utcnow

STATUS_ONLY = frozenset({"operationalStatus"})  # what a status change changes: its index rows alone are rewritten


@dataclass(frozen=True)
class StatusChange:
    """One request: set bed `location_id` to v2-0116 `code` (If-Match: `expected_version`)."""

    ctx: AccessContext
    location_id: str
    code: str
    expected_version: int | None


def together(change: StatusChange) -> Together:
    """The change as a group-commit item: written with the other bed changes of its batch."""
    return Together(set_many, change)


async def set_many(uow: Any, changes: list[StatusChange]) -> list[WriteResult | Refused]:
    """One outcome per change, in order: its WriteResult, or Refused with the error a lone request would get."""
    outcomes: list[WriteResult | Refused | None] = [None] * len(changes)
    state = _State()
    pending = list(range(len(changes)))
    while pending:  # rounds: each bed at most once per round
        seen: set[str] = set()
        now: list[int] = []
        later: list[int] = []
        for i in pending:
            (later if changes[i].location_id in seen else now).append(i)
            seen.add(changes[i].location_id)
        alone = uow.sole_work and not later  # the unit writes nothing after this round
        if not await _remembered_round(uow, changes, now, outcomes, state, alone=alone):
            await _round(uow, changes, now, outcomes, state)
        pending = later
    if state.memo is not None:
        memo, committed = state.memo, state.committed()
        uow.after_commit(lambda: _remember(memo, committed))
    return [o for o in outcomes if o is not None]


@dataclass
class _State:
    """What one `set_many` call knows of its beds so far (as its own writes left them)."""

    beds: dict[str, StoredResource | None] = field(default_factory=dict)
    sources: dict[str, Any] = field(default_factory=dict)  # by source ("Location/<id>")
    providers: dict[str, Any] = field(default_factory=dict)  # provider rows by org_id
    memo: BedMemo | None = None  # PostgreSQL: this process's memo (bed_memo.py)

    def committed(self) -> dict[str, Remembered]:
        """The beds as they are once this unit of work commits."""
        remembered = {}
        for bed_id, bed in self.beds.items():
            source = self.sources.get(f"Location/{bed_id}")
            if bed is not None and not bed.deleted:
                remembered[bed_id] = Remembered(bed, source, self.providers.get(source.org_id) if source else None)
        return remembered


async def _remember(memo: BedMemo, committed: dict[str, Remembered]) -> None:
    memo.put(committed)


async def _remembered_round(uow: Any, changes: list[StatusChange], indexes: list[int],
                            outcomes: list[WriteResult | Refused | None], state: _State, *, alone: bool) -> bool:
    """The round decided on the beds as this process remembers them and written in one statement — which, when
    the unit of work has nothing else to write (`alone`), commits by itself. False (nothing written, nothing
    decided) when a bed is not remembered, when a change is anything but a plain status change (a refusal or a
    confirmation must rest on rows read now), or when the statement found a row moved on since: the caller then
    reads and locks the beds (`_round`)."""
    if uow.conn.dialect.name != "postgresql":
        return False
    memo = state.memo = memo_of(uow.runtime)
    bed_ids = [changes[i].location_id for i in indexes]
    if any(bed_id in state.beds for bed_id in bed_ids):
        return False
    remembered = memo.recall(bed_ids)
    if remembered is None:
        return False
    providers = {r.provider.org_id: r.provider for r in remembered.values() if r.provider is not None}
    directory = directory_for(uow)
    directory.remember(list(providers.values()))
    if not await _write_remembered(uow, changes, indexes, outcomes, state, remembered, providers, alone=alone):
        for org_id in providers:  # what was remembered of them must not decide the round read again
            directory.forget(org_id)
        memo.forget(bed_ids)
        return False
    return True


async def _write_remembered(uow: Any, changes: list[StatusChange], indexes: list[int],
                            outcomes: list[WriteResult | Refused | None], state: _State,
                            remembered: dict[str, Remembered], providers: dict[str, Any], *, alone: bool) -> bool:
    """`_remembered_round`'s decisions and write; False as soon as one of them cannot rest on the memo."""
    now = utcnow()
    written: list[tuple[PreparedUpdate, BedFacts]] = []
    for i in indexes:
        try:
            decided = await _decide(uow, changes[i], remembered[changes[i].location_id].bed, now)
        except HubError:
            return False
        if isinstance(decided, WriteResult):
            return False
        written.append(decided)
    sources = {f"Location/{b}": r.source for b, r in remembered.items()}
    status_only, general = _status_only(written, sources)
    if general:
        return False
    written_sources = await _write(uow, written, status_only, providers.values(), alone=alone)
    if written_sources is None:
        return False
    state.providers.update(providers)
    state.sources.update(sources)
    state.sources.update(written_sources)
    for i, (prepared, _) in zip(indexes, written, strict=True):
        state.beds[changes[i].location_id] = prepared.stored
        outcomes[i] = WriteResult(prepared.stored, created=False)
    return True


async def _round(uow: Any, changes: list[StatusChange], indexes: list[int],
                 outcomes: list[WriteResult | Refused | None], state: _State) -> None:
    beds, sources = state.beds, state.sources
    unread = sorted({changes[i].location_id for i in indexes} - beds.keys())
    if unread:
        found = await read_beds(uow, unread)
        beds.update({bed_id: found.beds.get(bed_id) for bed_id in unread})
        sources.update(found.sources)
        state.providers.update({p.org_id: p for p in found.providers})
        directory_for(uow).remember(found.providers)
    written: list[tuple[PreparedUpdate, BedFacts]] = []
    now = utcnow()  # one lastUpdated for the versions of a round: they commit together
    for i in indexes:
        change = changes[i]
        try:
            decided = await _decide(uow, change, beds.get(change.location_id), now)
        except HubError as exc:
            outcomes[i] = Refused(exc)
            continue
        if isinstance(decided, WriteResult):  # the same status again: a confirmation
            await aggregate.touch(uow, f"Location/{change.location_id}", publish,
                                  old=sources.get(f"Location/{change.location_id}"))
            outcomes[i] = decided
            continue
        prepared, was = decided
        written.append((prepared, was))
        beds[change.location_id] = prepared.stored
        outcomes[i] = WriteResult(prepared.stored, created=False)
    status_only, general = _status_only(written, sources)
    providers = [p for p in state.providers.values() if any(old.org_id == p.org_id for old, _, _ in status_only)]
    written_sources = await _write(uow, written, status_only, providers)
    if written_sources is None:  # the beds are locked: a source or provider row moved on since they were read
        raise SourceChanged("a bed's availability was changed by another request at the same time; retry")
    sources.update(written_sources)
    for prepared in general:  # what the write hook does, for the beds whose placement is not the stored one
        source = f"Location/{prepared.stored.res_id}"
        await on_write(uow, prepared.ctx, "Location", prepared.before, prepared.resource)
        sources.pop(source, None)  # the hook wrote it: read it again if this bed comes round again
        sources.update(await aggregate.stored_sources(uow.conn, [source]))


async def _write(uow: Any, written: list[tuple[PreparedUpdate, BedFacts]], status_only: list[tuple[Any, str, Figures]],
                 providers: Iterable[Any], *, alone: bool = False) -> dict[str, Any] | None:
    """The round's changed beds, with (PostgreSQL: in the same statement) the source rows and aggregate of those
    whose status alone changed; the source rows as written, or None when a row the decisions rest on moved on —
    then nothing was written. `alone`: the unit of work writes nothing else (SqlResourceRepository.update_many)."""
    plan = aggregate.plan_status_changes(uow.conn.dialect.name, status_only, providers)
    if alone and await subscriptions.would_notify(uow, plan.deltas):  # deliveries go in the same transaction
        alone = False
    also_rows = await uow.resources.update_many([p for p, _ in written], skip_hook=on_write, also=plan.also,
                                                alone=alone)
    if also_rows is None:
        return None
    return await aggregate.finish_status_changes(uow, plan, also_rows, publish)


async def _decide(uow: Any, change: StatusChange, current: StoredResource | None,
                  now: datetime) -> WriteResult | tuple[PreparedUpdate, BedFacts]:
    ctx, location_id, code = change.ctx, change.location_id, change.code
    if code not in v.BED_STATUS:
        raise UnknownBedStatus(f"status '{code}' is not an HL7 v2 table 0116 code ({', '.join(v.BED_STATUS)})",
                               expression=["Parameters.parameter.where(name='status')"])
    if current is None or not policy.may_read_row(ctx, "Location", medical=current.medical,
                                                  owner_org=current.owner_org):
        raise NotFound(f"Location/{location_id} is not known")
    if current.deleted:
        raise Gone(f"Location/{location_id} was deleted", headers={"ETag": current.etag})
    bed = orjson.loads(current.content)
    facts = bed_facts(bed)  # None unless a bed
    if facts is None:
        raise NotABed(f"Location/{location_id} is not a bed (physicalType bd)")
    await check_owner(directory_for(uow), ctx, [facts.org_id], f"Location/{location_id}")
    if change.expected_version is not None and change.expected_version != current.version:
        raise PreconditionFailed(f"Location/{location_id} is at version {current.version}, not "
                                 f"{change.expected_version} (If-Match)", headers={"ETag": current.etag})
    status = bed.get("operationalStatus") or {}
    if (status.get("system"), status.get("code")) == (v.V2_0116, code):
        return WriteResult(current, created=False, unchanged=True)
    changed = {**bed, "operationalStatus": {"system": v.V2_0116, "code": code, "display": v.BED_STATUS[code]}}
    check_rules(changed, uow.runtime.rules)  # the stored bed was validated; the new Coding is from 0116
    policy.check_write(ctx, "Location", existing_owner=current.owner_org, resource=changed)
    prepared = uow.resources.prepare_update(ctx, changed, current, method="PATCH", changed=True,
                                            changed_elements=STATUS_ONLY, before=bed, now=now)
    assert prepared is not None  # the status differs, so the content does
    return prepared, facts


def _status_only(written: list[tuple[PreparedUpdate, BedFacts]],
                 sources: dict[str, Any]) -> tuple[list[tuple[Any, str, Figures]], list[PreparedUpdate]]:
    """The changes the aggregate can take as a status change of the stored source row ((row, new status, new
    figures) each), and the rest, which go through the write hook (never counted yet, or the row no longer
    matches the bed)."""
    status_only: list[tuple[Any, str, Figures]] = []
    general: list[PreparedUpdate] = []
    for prepared, was in written:
        stored = sources.get(f"Location/{prepared.stored.res_id}")
        if stored is not None and stored.status == was.status and stored.org_id == was.org_id:
            # only operationalStatus changed (_decide built it so): the bed's other facts are those it had
            status = bed_status(prepared.resource)
            status_only.append((stored, status, aggregate.status_figures(stored, status, was.active)))
        else:
            general.append(prepared)
    return status_only, general
