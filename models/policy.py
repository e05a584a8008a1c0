"""The actions policy, pure: which task a risk verdict calls for, when it is due, what it pays.

Shared by the service (which writes the tasks, `serving.actions`) and the data scientists' side
(what-if runs), so both decide exactly alike. No I/O here.

    credits = base hours of the task kind x urgency multiplier x scarcity (rounded to 0.25 h)
    scarcity = demand hours forecast for the grid / volunteer hours offered there, capped to
               [scarcity_floor, scarcity_cap]

Which kind of task a model's high band opens is the model's own (`RiskSpec.task_kind`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from types import MappingProxyType
from typing import Any

import pandas as pd

from models.spec import RiskSpec, causes_of
from twin.schema import TASK_HOURS


def _frozen(d: Mapping) -> Mapping:
    return MappingProxyType(dict(d))


@dataclass(frozen=True)
class ActionPolicy:
    """Tunable knobs of the actions policy (one object, built at the edge)."""

    open_bands: tuple[str, ...] = ("high",)
    due_days: Mapping[str, int] = field(
        default_factory=lambda: _frozen({"high": 2, "medium": 7, "low": 14})
    )
    urgency_multiplier: Mapping[str, float] = field(
        default_factory=lambda: _frozen({"high": 1.5, "medium": 1.2, "low": 1.0})
    )
    # Planned hours of each task kind, as the twin declares them (also a request's hours).
    base_hours: Mapping[str, float] = field(default_factory=lambda: _frozen(TASK_HOURS))
    scarcity_floor: float = 1.0
    scarcity_cap: float = 2.0
    credit_step: float = 0.25
    max_reasons: int = 3
    # a live hazard alert: a check visit due within the hour, paid above a high-band visit
    alert_task_kind: str = "home_hazard_check"
    alert_credit_multiplier: float = 2.0
    alert_due_minutes: int = 60

    def __post_init__(self) -> None:
        if not 0 < self.scarcity_floor <= self.scarcity_cap:
            raise ValueError(
                f"need 0 < scarcity_floor <= scarcity_cap, got {self.scarcity_floor}, {self.scarcity_cap}"
            )
        if self.credit_step <= 0:
            raise ValueError(f"credit_step must be positive, got {self.credit_step}")
        missing = [b for b in self.open_bands if b not in self.due_days or b not in self.urgency_multiplier]
        if missing:
            raise ValueError(f"bands {missing} open tasks but have no due days or urgency multiplier")


DEFAULT_POLICY = ActionPolicy()


@dataclass(frozen=True)
class Verdict:
    """One model's verdict on one resident, as `/assess`, the batch scorer or a what-if makes it.

    `reasons` are the top reasons, most important first, as mappings with at least `feature`
    and `text` (and ideally `contribution`, `value`, `causes`).
    """

    resident_id: str
    grid_id: str
    model: str
    probability: float
    band: str
    reasons: Sequence[Mapping[str, Any]] = ()
    model_version: str | None = None
    as_of: date | None = None


@dataclass(frozen=True)
class Scarcity:
    """How short of volunteers a grid is, and the numbers behind it."""

    factor: float
    demand_hours: float | None = None
    supply_hours: float | None = None

    def to_dict(self) -> dict:
        return {"factor": self.factor, "demand_hours": self.demand_hours, "supply_hours": self.supply_hours}


NEUTRAL_SCARCITY = Scarcity(1.0)


# ---------------------------------------------------------------------------------------------
# Pure policy
# ---------------------------------------------------------------------------------------------


def scarcity(
    demand_hours: float | None,
    supply_hours: float | None,
    *,
    floor: float = DEFAULT_POLICY.scarcity_floor,
    cap: float = DEFAULT_POLICY.scarcity_cap,
) -> float:
    """Demand over supply, capped to [floor, cap]; unknown demand counts as not scarce.

    No supply at all with some demand is as scarce as it gets (the cap).
    """
    if demand_hours is None or not math.isfinite(demand_hours) or demand_hours <= 0:
        return floor
    if supply_hours is None or not math.isfinite(supply_hours) or supply_hours <= 0:
        return cap
    return min(cap, max(floor, demand_hours / supply_hours))


def round_credits(hours: float, step: float = DEFAULT_POLICY.credit_step) -> float:
    """Round to the nearest `step` hours (0.25 h by default; at least one step)."""
    return max(step, math.floor(hours / step + 0.5) * step)


def credit_hours(
    kind: str, urgency: str, scarcity_factor: float, policy: ActionPolicy = DEFAULT_POLICY
) -> float:
    """Credits offered for a task: base hours x urgency multiplier x scarcity, capped and rounded."""
    if kind not in policy.base_hours:
        raise ValueError(f"no base hours for task kind {kind!r}")
    if urgency not in policy.urgency_multiplier:
        raise ValueError(f"no multiplier for urgency {urgency!r}")
    s = min(policy.scarcity_cap, max(policy.scarcity_floor, scarcity_factor))
    return round_credits(policy.base_hours[kind] * policy.urgency_multiplier[urgency] * s, policy.credit_step)


def due_date_for(urgency: str, today: date, policy: ActionPolicy = DEFAULT_POLICY) -> date:
    """High urgency is due in 2 days, medium in 7, low in 14 (by default)."""
    if urgency not in policy.due_days:
        raise ValueError(f"no due days for urgency {urgency!r}")
    return today + timedelta(days=int(policy.due_days[urgency]))


class PolicyError(ValueError):
    """A verdict the policy cannot act on (unknown model, probability not a number)."""


def _check(a: Verdict, spec: RiskSpec) -> None:
    if spec.name != a.model:
        raise PolicyError(f"a verdict of {a.model!r} planned with the spec of {spec.name!r}")


def explanation_for(a: Verdict, spec: RiskSpec, policy: ActionPolicy = DEFAULT_POLICY) -> str:
    """One sentence a care manager can read: the verdict and the top reasons."""
    _check(a, spec)
    label = spec.title
    texts = [str(r.get("text") or r.get("feature")) for r in a.reasons[: policy.max_reasons]]
    head = f"{label} is {a.band} ({a.probability:.0%})"
    return head + (": " + "; ".join(texts) if texts else "")


@dataclass(frozen=True)
class PlannedTask:
    """The task a verdict calls for: what the store opens (one active per resident and reason)."""

    resident_id: str
    grid_id: str
    kind: str
    reason: str  # the model's name: one active task per resident and model
    due_date: date
    credits: float
    urgency: str
    hours: float
    explanation: str
    reasons: tuple[Mapping[str, Any], ...]
    model: str | None
    model_version: str | None
    probability: float | None
    band: str | None
    as_of: date | None
    details: Mapping[str, Any]


def plan_task(
    a: Verdict,
    spec: RiskSpec,
    *,
    today: date,
    scarcity: Scarcity = NEUTRAL_SCARCITY,
    policy: ActionPolicy = DEFAULT_POLICY,
) -> PlannedTask | None:
    """The task a verdict calls for (`spec` = the model's own), or None when its band opens none."""
    _check(a, spec)
    if not isinstance(a.probability, int | float) or not math.isfinite(a.probability):
        raise PolicyError(f"probability for {a.resident_id}/{a.model} is not a number: {a.probability!r}")
    if a.band not in policy.open_bands:
        return None
    urgency = a.band
    kind = spec.task_kind(a.reasons)
    s = min(policy.scarcity_cap, max(policy.scarcity_floor, scarcity.factor))
    reasons = tuple({**dict(r), "causes": list(causes_of(r))} for r in a.reasons[: policy.max_reasons])
    return PlannedTask(
        resident_id=a.resident_id,
        grid_id=a.grid_id,
        kind=kind,
        reason=a.model,
        due_date=due_date_for(urgency, today, policy),
        credits=credit_hours(kind, urgency, s, policy),
        urgency=urgency,
        hours=float(policy.base_hours[kind]),
        explanation=explanation_for(a, spec, policy),
        reasons=reasons,
        model=a.model,
        model_version=None if a.model_version is None else str(a.model_version),
        probability=float(a.probability),
        band=a.band,
        as_of=a.as_of,
        details={
            "credit_formula": {
                "base_hours": policy.base_hours[kind],
                "urgency": urgency,
                "urgency_multiplier": policy.urgency_multiplier[urgency],
                "scarcity": s,
                "demand_hours": scarcity.demand_hours,
                "supply_hours": scarcity.supply_hours,
                "scarcity_cap": [policy.scarcity_floor, policy.scarcity_cap],
            }
        },
    )


ALERT_REASON = "alert"
"""Reason code of alert tasks: one active alert visit per resident, whatever the alert."""


def plan_alert_task(
    resident_id: str,
    grid_id: str,
    alert_kind: str,
    text: str,
    *,
    today: date,
    scarcity: Scarcity = NEUTRAL_SCARCITY,
    policy: ActionPolicy = DEFAULT_POLICY,
) -> PlannedTask:
    """The urgent check visit a live alert opens: due today (within `alert_due_minutes`), credits
    of a high-urgency visit raised by `alert_credit_multiplier` (capped like any task's)."""
    kind = policy.alert_task_kind
    s = min(policy.scarcity_cap, max(policy.scarcity_floor, scarcity.factor))
    base = credit_hours(kind, "high", s, policy)
    credits = min(round_credits(base * policy.alert_credit_multiplier, policy.credit_step), 100.0)
    return PlannedTask(
        resident_id=resident_id,
        grid_id=grid_id,
        kind=kind,
        reason=ALERT_REASON,
        due_date=today,
        credits=credits,
        urgency="high",
        hours=float(policy.base_hours[kind]),
        explanation=f"Alert ({alert_kind.replace('_', ' ')}): {text}",
        reasons=({"feature": alert_kind, "text": text, "causes": []},),
        model=None,
        model_version=None,
        probability=None,
        band=None,
        as_of=None,
        details={
            "alert_kind": alert_kind,
            "due_minutes": policy.alert_due_minutes,
            "credit_formula": {
                "base_hours": policy.base_hours[kind],
                "urgency": "high",
                "urgency_multiplier": policy.urgency_multiplier["high"],
                "scarcity": s,
                "alert_multiplier": policy.alert_credit_multiplier,
                "demand_hours": scarcity.demand_hours,
                "supply_hours": scarcity.supply_hours,
            },
        },
    )


def grid_scarcity(
    forecast: pd.DataFrame,
    volunteers: pd.DataFrame,
    *,
    horizon_days: int = 7,
    policy: ActionPolicy = DEFAULT_POLICY,
) -> dict[str, Scarcity]:
    """Scarcity per grid from a demand forecast and the volunteers living there.

    `forecast` has `series_id` ("<grid_id>:<category>") and `forecast` (requests a day) for the
    coming days (`horizon` 1..n, when present, limits it to `horizon_days`); demand hours are
    requests x the base hours of their category. `volunteers` has `grid_id` and `weekly_hours`;
    supply is their offered hours over the same horizon.
    """
    for col in ("series_id", "forecast"):
        if col not in forecast.columns:
            raise ValueError(f"forecast needs a {col!r} column; has {list(forecast.columns)}")
    for col in ("grid_id", "weekly_hours"):
        if col not in volunteers.columns:
            raise ValueError(f"volunteers need a {col!r} column; has {list(volunteers.columns)}")
    f = forecast
    if "horizon" in f.columns:
        f = f[f["horizon"] <= horizon_days]
    parts = f["series_id"].astype(str).str.rsplit(":", n=1, expand=True)
    if parts.shape[1] != 2:
        raise ValueError("forecast series_id must look like '<grid_id>:<category>'")
    hours_each = parts[1].map(lambda c: policy.base_hours.get(c, 1.0)).astype(float)
    demand = (f["forecast"].clip(lower=0).astype(float) * hours_each).groupby(parts[0]).sum()
    supply = volunteers.groupby("grid_id")["weekly_hours"].sum().astype(float) * (horizon_days / 7.0)
    out: dict[str, Scarcity] = {}
    for grid in sorted(set(demand.index) | set(supply.index)):
        d = float(demand.get(grid, 0.0))
        s = float(supply.get(grid, 0.0))
        out[str(grid)] = Scarcity(
            scarcity(d, s, floor=policy.scarcity_floor, cap=policy.scarcity_cap), round(d, 3), round(s, 3)
        )
    return out


def open_key_for(a: Verdict, today: date) -> str:
    """Idempotency key of the task an assessment opens: one per resident, reason and as-of date,
    so re-running a night's scoring never reopens a task that was since completed."""
    return f"assess:{a.resident_id}:{a.model}:{(a.as_of or today).isoformat()}"


