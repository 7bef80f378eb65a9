"""What this API process last saw committed of the beds it changed, so the next status change of a bed can be
decided without reading it first.

Why: a batch of bed status changes spent a third of its time on PostgreSQL round trips that only read what it
already knew — BEGIN, the locked read of the beds with their source and provider rows, COMMIT. With the rows
remembered, a batch is decided in memory and written in one statement that commits by itself
(bed_status.py); under concurrent batches the shared aggregate rows are then locked only for that statement.

The memo is a hint, never a source of truth: the statement writes nothing unless every bed is still at the
version remembered and every source and provider row still as remembered (raw.Also guard,
aggregate._pg_status_guard), and a batch whose rows moved on reads and locks them as before. Entries are only
taken from committed state (after COMMIT): a bed version number can be reused by a rolled-back write, so an
uncommitted one could match a different committed content. One process, one memo; another process's writes are
caught by the same check.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from hub.store.repository import StoredResource

CAPACITY = 10_000  # beds: a region has a few thousand; ~2 kB each (the bed's JSON, its source row), so <= ~20 MB


@dataclass(frozen=True)
class Remembered:
    """A bed as committed, with its availability source row and its provider's row (None: none stored)."""

    bed: StoredResource
    source: Any
    provider: Any


class BedMemo:
    """Least recently used beds first out, at most `capacity`."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._beds: OrderedDict[str, Remembered] = OrderedDict()

    def recall(self, bed_ids: list[str]) -> dict[str, Remembered] | None:
        """All of these beds with a source row, or None if any is not remembered so."""
        found = {}
        for bed_id in bed_ids:
            entry = self._beds.get(bed_id)
            if entry is None or entry.source is None:
                return None
            found[bed_id] = entry
        for bed_id in bed_ids:
            self._beds.move_to_end(bed_id)
        return found

    def put(self, entries: dict[str, Remembered]) -> None:
        """Committed states; an older version than the one held is ignored (batches commit side by side)."""
        for bed_id, entry in entries.items():
            held = self._beds.get(bed_id)
            if held is None or held.bed.version <= entry.bed.version:
                self._beds[bed_id] = entry
                self._beds.move_to_end(bed_id)
        while len(self._beds) > self.capacity:
            self._beds.popitem(last=False)

    def forget(self, bed_ids: list[str]) -> None:
        for bed_id in bed_ids:
            self._beds.pop(bed_id, None)

    def __len__(self) -> int:
        return len(self._beds)


def memo_of(runtime: Any) -> BedMemo:
    memo: BedMemo | None = runtime.extras.get("availability.bed_memo")
    if memo is None:
        memo = runtime.extras["availability.bed_memo"] = BedMemo()
    return memo
