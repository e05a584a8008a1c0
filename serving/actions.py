"""From risk to help, the write: open the tasks the actions policy plans.

The policy itself is pure and lives in `models.policy` (shared with what-if runs);
`act_on_assessments` is the one place that writes, through `TimeBankStore.open_task`, which
guarantees at most one active task per resident and reason even under concurrent callers. Every
task keeps the reasons and the credit-formula inputs that produced it, so an action can always be
explained.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from models.policy import (
    DEFAULT_POLICY,
    NEUTRAL_SCARCITY,
    ActionPolicy,
    PlannedTask,
    PolicyError,
    Scarcity,
    Verdict,
    credit_hours,
    due_date_for,
    grid_scarcity,
    open_key_for,
    plan_alert_task,
    scarcity,
)
from models.policy import plan_task as plan
from models.registry import risk_specs
from serving.store import Actor, InvalidInput, Task, TaskSpec, TimeBankStore

__all__ = [
    "DEFAULT_POLICY", "ActionOutcome", "ActionPolicy", "Scarcity", "Verdict", "act_on_assessments", "alert_task_spec",
    "credit_hours", "due_date_for", "grid_scarcity", "open_key_for", "plan_task", "scarcity",
    "task_kind_for",
]


def task_kind_for(model: str, reasons) -> str:
    """The visit a model's verdict calls for, as the model's spec decides from its reasons."""
    return _risk_spec(model).task_kind(reasons)


def _risk_spec(model: str):
    spec = risk_specs().get(model)
    if spec is None:
        raise PolicyError(f"no action is defined for model {model!r}")
    return spec


def plan_task(a: Verdict, *, today: date, scarcity: Scarcity = NEUTRAL_SCARCITY,
              policy: ActionPolicy = DEFAULT_POLICY) -> TaskSpec | None:
    """The store's task spec for a verdict (None when its band opens no task); a verdict the
    policy cannot act on is the store's InvalidInput (a 4xx at the edge)."""
    try:
        planned = plan(a, _risk_spec(a.model), today=today, scarcity=scarcity, policy=policy)
    except PolicyError as exc:
        raise InvalidInput(str(exc)) from None
    return None if planned is None else _spec(planned)


def _spec(p: PlannedTask) -> TaskSpec:
    return TaskSpec(**{f.name: getattr(p, f.name) for f in dataclasses.fields(p)})


def alert_task_spec(resident_id: str, grid_id: str, alert_kind: str, text: str, *, today: date,
                    scarcity: Scarcity = NEUTRAL_SCARCITY, policy: ActionPolicy = DEFAULT_POLICY) -> TaskSpec:
    """The store's task spec of the urgent check visit a live alert opens (`models.policy`)."""
    return _spec(plan_alert_task(resident_id, grid_id, alert_kind, text, today=today, scarcity=scarcity,
                                 policy=policy))


@dataclass(frozen=True)
class ActionOutcome:
    """What an assessment led to: `action` is "opened", "already_open" or "none"."""

    resident_id: str
    model: str
    action: str
    why: str
    task: Task | None = None

    def to_dict(self) -> dict:
        return {
            "resident_id": self.resident_id,
            "model": self.model,
            "action": self.action,
            "why": self.why,
            "task": None if self.task is None else self.task.to_dict(),
        }


# ---------------------------------------------------------------------------------------------
# The write
# ---------------------------------------------------------------------------------------------


def act_on_assessments(
    store: TimeBankStore,
    assessments: Iterable[Verdict],
    *,
    today: date | None = None,
    scarcity_by_grid: Mapping[str, Scarcity] | None = None,
    policy: ActionPolicy = DEFAULT_POLICY,
    actor: Actor | None = None,
) -> list[ActionOutcome]:
    """Open the tasks the assessments call for (at most one active per resident and reason)."""
    today = today or store.now().date()
    scarcity_by_grid = scarcity_by_grid or {}
    out: list[ActionOutcome] = []
    for a in assessments:
        spec = plan_task(
            a, today=today, scarcity=scarcity_by_grid.get(a.grid_id, NEUTRAL_SCARCITY), policy=policy
        )
        if spec is None:
            out.append(ActionOutcome(a.resident_id, a.model, "none", f"band {a.band} opens no task"))
            continue
        res = store.open_task(spec, idempotency_key=open_key_for(a, today), actor=actor)
        task = store.get_task(res.task.task_id) if res.replayed else res.task
        if res.created and not res.replayed:
            out.append(ActionOutcome(a.resident_id, a.model, "opened", spec.explanation, res.task))
        elif task.status in ("open", "claimed"):
            out.append(
                ActionOutcome(
                    a.resident_id, a.model, "already_open",
                    f"task {task.task_id} for {a.model} is already {task.status}", task,
                )
            )
        else:  # replay of an earlier night's key whose task has since finished
            out.append(
                ActionOutcome(
                    a.resident_id, a.model, "none",
                    f"this assessment already led to task {task.task_id} ({task.status})", task,
                )
            )
    return out
