"""Referral and offer Tasks change only through this package's transitions (the server enforces the state
machine, not the clients): a transition marks its unit of work, and the Task write hook refuses any other write."""

from __future__ import annotations

import weakref
from typing import Any

_SANCTIONED: weakref.WeakSet[Any] = weakref.WeakSet()


def allow_task_writes(uow: Any) -> None:
    """Called by a referral transition before it writes its Tasks in this unit of work."""
    _SANCTIONED.add(uow)


def task_writes_allowed(uow: Any) -> bool:
    return uow in _SANCTIONED
