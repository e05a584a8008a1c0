"""Double-entry time credits: accounts, amounts and balanced transfers (pure, no I/O).

Credits are hours. The store keeps them as whole minutes so that sums in SQL are exact and a
transfer's movements add up to exactly zero on every database; hours are only the display unit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

FUND_ACCOUNT = "fund:community"
VOLUNTEER_PREFIX = "volunteer:"
VOLUNTEER_ID_PATTERN = r"^[A-Za-z0-9_.\-]{1,64}$"
"""The one rule for a volunteer id, shared by the API bodies and the ledger's account names."""
_ACCOUNT_RE = re.compile(r"^(fund|volunteer):[A-Za-z0-9_.\-]{1,64}$")
_VOLUNTEER_ID_RE = re.compile(VOLUNTEER_ID_PATTERN)


class UnbalancedTransfer(ValueError):
    """A transfer whose movements do not sum to zero."""


def volunteer_account(volunteer_id: str) -> str:
    """The ledger account of a volunteer, e.g. `volunteer:V00012`."""
    if not isinstance(volunteer_id, str) or not _VOLUNTEER_ID_RE.match(volunteer_id):
        raise ValueError(
            f"volunteer id {volunteer_id!r} is not valid: use 1-64 letters, digits, '_', '.', '-'"
        )
    return VOLUNTEER_PREFIX + volunteer_id


def check_account(account: str) -> str:
    """Return `account` if it is a well-formed account name, else raise ValueError."""
    if not isinstance(account, str) or not _ACCOUNT_RE.match(account):
        raise ValueError(
            f"account {account!r} is not valid: expected 'fund:<name>' or 'volunteer:<id>'"
        )
    return account


def hours_to_minutes(hours: float) -> int:
    """Whole minutes of credit in `hours` (rounded half away from zero)."""
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not math.isfinite(hours):
        raise ValueError(f"credit hours must be a finite number, got {hours!r}")
    minutes = abs(hours) * 60.0
    whole = math.floor(minutes + 0.5)
    return int(whole if hours >= 0 else -whole)


def minutes_to_hours(minutes: int) -> float:
    """Hours for a whole number of credit minutes."""
    return round(minutes / 60.0, 6)


@dataclass(frozen=True)
class Movement:
    """One side of a transfer: a signed amount on one account."""

    entry_id: str
    transfer_id: str
    timestamp: datetime
    account: str
    minutes: int
    memo: str
    task_id: str | None = None

    @property
    def hours(self) -> float:
        return minutes_to_hours(self.minutes)

    def to_dict(self) -> dict:
        return {
            "entry_id": self.entry_id,
            "transfer_id": self.transfer_id,
            "timestamp": self.timestamp.isoformat(),
            "account": self.account,
            "amount": self.hours,
            "memo": self.memo,
            "task_id": self.task_id,
        }


def transfer_legs(from_account: str, to_account: str, minutes: int) -> list[tuple[str, int]]:
    """The two legs of moving `minutes` from one account to another (they sum to zero)."""
    check_account(from_account)
    check_account(to_account)
    if from_account == to_account:
        raise ValueError(f"a transfer needs two different accounts, got {from_account!r} twice")
    if not isinstance(minutes, int) or minutes <= 0:
        raise ValueError(f"a transfer moves a positive whole number of minutes, got {minutes!r}")
    return [(from_account, -minutes), (to_account, minutes)]


def check_balanced(legs: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    """Return the legs if they sum to exactly zero, else raise UnbalancedTransfer."""
    legs = list(legs)
    if len(legs) < 2:
        raise UnbalancedTransfer("a transfer needs at least two movements")
    total = sum(m for _, m in legs)
    if total != 0:
        raise UnbalancedTransfer(f"movements sum to {total} minutes, not zero: {legs}")
    return legs


def balances_from(movements: Iterable[Movement]) -> dict[str, int]:
    """Minutes per account, summed from movements (the definition of a balance)."""
    out: dict[str, int] = {}
    for m in movements:
        out[m.account] = out.get(m.account, 0) + m.minutes
    return out


def in_hours(balances: Mapping[str, int]) -> dict[str, float]:
    return {a: minutes_to_hours(m) for a, m in balances.items()}
