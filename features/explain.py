"""Plain-language reasons from a feature's declaration and the resident's feature row.

`reason_text("night_toilet_visits_z7v90", row, 0.4)` ->
"night-time toilet visits rose from 1.1 to 3.2 a night this week". The sentence comes from the
feature's family; the words from its declaration in the registry (labels, descriptions, units,
its `Wording`), the numbers from the row; a deviation is told against its companion baseline so
a care manager sees the change, not a z-score. No feature is named here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from features.registry import SIGNAL_BY_COLUMN, Z_RECENT_DAYS, get_feature

# the planted causes in a care manager's words: what a model's per-cause attribution is about
CAUSE_WORDS = {
    "acute_episode": "a recent change in health (an infection or a new medicine)",
    "previous_fall": "falls on record",
    "gait_balance": "walking and balance",
    "polypharmacy": "many medicines",
    "fear_of_falling": "fear of falling",
    "cognitive_impairment": "memory and thinking",
    "poor_vision": "poor eyesight",
    "frailty": "frailty",
    "lives_alone": "living alone",
    "bereavement": "a bereavement",
    "low_mobility": "getting out less",
    "few_visits": "few visits",
    "trait": "long-standing loneliness",
}


def cause_text(cause: str) -> str:
    """A cause in plain words (the cause's name, spaced, when it has no words yet)."""
    return CAUSE_WORDS.get(cause, cause.replace("_", " "))


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _num(value: float, unit: str = "") -> str:
    """A number as a person would say it: whole counts without decimals, speeds with two."""
    if unit == "m/s":
        return f"{value:.2f}"
    if abs(value) >= 100 or unit == "steps":
        return f"{value:,.0f}"
    if float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.1f}"


def _times(n: float) -> str:
    n = int(round(n))
    return "once" if n == 1 else "twice" if n == 2 else f"{n} times"


def _with_unit(text: str, unit: str) -> str:
    return f"{text} {unit}".rstrip() if unit and unit not in ("sd",) else text


def reason_text(feature: str, row: Mapping[str, float], contribution: float = 0.0) -> str:
    """One plain-language sentence fragment saying what `feature` shows for this resident.

    The text states what the row shows; `contribution` (the model's SHAP value) is accepted so
    callers can pass a reason as they rank it, and the caller shows its sign and size.
    """
    f = get_feature(feature)
    value = row.get(feature, float("nan"))
    fam = f.family
    words = f.words
    sig = SIGNAL_BY_COLUMN.get(f.basis)
    label = sig.label if sig else f.description

    if fam == "deviation" and sig is not None and f.recent_days != Z_RECENT_DAYS:  # no level of the span to show
        days = f.recent_days
        base = row.get(f.companion, float("nan"))
        if _missing(value) or _missing(base):
            return f"not enough {label} data to compare the last {days} days with the usual"
        if abs(value) < 0.5:
            return f"{label} in the last {days} days as usual (usually {_with_unit(_num(base, sig.unit), sig.unit)})"
        side = "above" if value > 0 else "below"
        return (f"{label} in the last {days} days {abs(value):.1f} standard deviations {side} the usual "
                f"{_with_unit(_num(base, sig.unit), sig.unit)}")
    if fam == "deviation" and sig is not None:
        recent = row.get(f"{sig.column}_7d", float("nan"))
        base = row.get(f.companion, float("nan"))
        if _missing(value) or _missing(recent) or _missing(base):
            return f"not enough {label} data to compare this week with the usual"
        if abs(value) < 0.5:
            return f"{label} this week as usual ({_with_unit(_num(recent, sig.unit), sig.unit)})"
        verb = "rose" if recent > base else "fell"
        return f"{label} {verb} from {_num(base, sig.unit)} to {_with_unit(_num(recent, sig.unit), sig.unit)} this week"
    if fam in ("level", "baseline") and sig is not None:
        if _missing(value):
            return f"no {label} data {('in the ' + f.description.split('over the ')[-1]) if fam == 'level' else 'for the usual baseline'}"
        span = f"over the last {f.window[:-1]} days" if fam == "level" else "usually (before this week)"
        return f"{label} averaged {_with_unit(_num(value, sig.unit), sig.unit)} {span}"
    if fam == "trend" and sig is not None:
        if _missing(value):
            return f"not enough {label} data to see a trend"
        if _num(abs(value), sig.unit) in ("0", "0.0", "0.00"):
            return f"{label} steady over the last month"
        verb = "rising" if value > 0 else "falling"
        unit = sig.unit if sig.unit not in ("a night", "a day") else ""
        return f"{label} {verb} by {_with_unit(_num(abs(value), sig.unit), unit)} a week over the last month"
    if fam == "variability" and sig is not None:
        if _missing(value):
            return f"not enough {label} data to judge how steady it is"
        return f"{label} varied by about {_with_unit(_num(value, sig.unit), sig.unit)} from day to day this month"
    if fam == "count" and words.yes:
        if _missing(value):
            return f"no record of {f.description}"
        return words.no if value == 0 else f"{words.yes} {_times(value)} {words.span}"
    if fam == "count":  # bereavements
        if _missing(value) or value == 0:
            return "no bereavement in the last year"
        return "was bereaved in the last year" if value == 1 else f"was bereaved {_times(value)} in the last year"
    if fam == "recency":
        what = words.short
        if _missing(value):
            return f"no {what} on record"
        return f"last {what} {_num(value)} days ago"
    if fam == "static":
        if _missing(value):
            return f"unknown whether the resident {f.description}" if words.yes else f"{f.description} unknown"
        if words.yes:
            return words.yes if value >= 0.5 else words.no
        if words.template:
            return words.template.format(value=_num(value))
        return f"has {_num(value)} {f.description}"
    if fam == "assessment":
        age = row.get(f.companion, float("nan"))
        label = f.description.removeprefix("last ")
        if _missing(value):
            return f"no {words.short or label} assessment on record"
        when = f" ({_num(age)} days ago)" if not _missing(age) else ""
        if words.yes:
            return f"{words.yes if value >= 0.5 else words.no}{when}"
        if words.template:
            high = words.high[1] if words.high and value >= words.high[0] else ""
            return f"{words.template.format(value=_num(value))}{high}{when}"
        return f"{label} took {_num(value)} {f.unit}{when}".replace(" )", ")")
    if fam == "assessment_age":
        label = words.short or f.basis
        if _missing(value):
            return f"no {label} assessment on record"
        return f"no {label} assessment for {_num(value)} days"
    if fam == "visit_count":
        who = words.short
        if _missing(value):
            return f"no record of {who} visits"
        if value == 0:
            return f"no {who} visits in the last 30 days"
        return f"{_num(value)} {who} visit{'s' if value != 1 else ''} in the last 30 days"
    if fam in ("visit_hours", "task_count", "request_count", "missing"):
        if _missing(value):
            return f"no record of {f.description}"
        if fam == "missing":
            days = f.window[:-1]
            return "sensor data on every day this week" if value == 0 and days == "7" else f"no sensor data on {_num(value)} of the last {days} days"
        n = int(round(value)) if fam != "visit_hours" else value
        if n == 0:
            return f"no {words.many} {words.span}"
        return f"{_num(value)} {words.one if n == 1 else words.many} {words.span}"
    # Anything else (e.g. demand features): the description and the value.
    if _missing(value):
        return f"{f.description}: unknown"
    return f"{f.description}: {_with_unit(_num(value, f.unit), f.unit)}"
