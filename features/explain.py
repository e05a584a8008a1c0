"""Plain-language reasons from a feature's declaration and the resident's feature row.

`reason_text("night_toilet_visits_z7v90", row, 0.4)` ->
"night-time toilet visits rose from 1.1 to 3.2 a night this week". The words come from the
registry (labels, descriptions, units), the numbers from the row; a deviation is told against its
companion baseline so a care manager sees the change, not a z-score.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from features.registry import SIGNAL_BY_COLUMN, get_feature

_EVENT_WORDS = {
    "falls_30d": ("fell", "in the last 30 days", "no falls in the last 30 days"),
    "falls_365d": ("fell", "in the last year", "no falls in the last year"),
    "injurious_falls_365d": ("was injured in a fall", "in the last year", "no injurious falls in the last year"),
    "hospitalisations_365d": ("was in hospital", "in the last year", "no hospital stays in the last year"),
}
_STATIC_WORDS = {
    "lives_alone": ("lives alone", "lives with others"),
    "sex_female": ("is a woman", "is a man"),
    "vision_impairment": ("has poor vision", "has no recorded vision problem"),
    "cognitive_impairment": ("has dementia or cognitive impairment", "has no recorded cognitive impairment"),
    "walking_aid": ("uses a walking aid", "walks without an aid"),
}
_ASSESSMENT_SHORT = {
    "tug_seconds": "Timed Up and Go",
    "fear_of_falling": "fear-of-falling",
    "steadi_fell_past_year": "STEADI",
    "steadi_unsteady": "STEADI",
    "loneliness_score": "loneliness",
}
_COUNT_WORDS = {
    "visit_hours_30d": (("hour of visits", "hours of visits"), "in the last 30 days"),
    "timebank_tasks_completed_90d": (("time-bank task done", "time-bank tasks done"), "for the resident in the last 90 days"),
    "service_requests_30d": (("request for help", "requests for help"), "in the last 30 days"),
    "companionship_requests_90d": (("request for companionship", "requests for companionship"), "in the last 90 days"),
}
_ASSESSMENT_FLAGS = {
    "fear_of_falling": ("is worried about falling", "is not worried about falling"),
    "steadi_fell_past_year": ("reported a fall in the past year", "reported no fall in the past year"),
    "steadi_unsteady": ("feels unsteady when standing or walking", "does not feel unsteady"),
}


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
    sig = SIGNAL_BY_COLUMN.get(f.basis)
    label = sig.label if sig else f.description

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
    if fam == "count" and feature in _EVENT_WORDS:
        verb, span, none = _EVENT_WORDS[feature]
        if _missing(value):
            return f"no record of {f.description}"
        return none if value == 0 else f"{verb} {_times(value)} {span}"
    if fam == "count":  # bereavements
        if _missing(value) or value == 0:
            return "no bereavement in the last year"
        return "was bereaved in the last year" if value == 1 else f"was bereaved {_times(value)} in the last year"
    if fam == "recency":
        what = "fall" if f.basis == "fall" else "visit"
        if _missing(value):
            return f"no {what} on record"
        return f"last {what} {_num(value)} days ago"
    if fam == "static":
        if _missing(value):
            return f"unknown whether the resident {f.description}" if feature in _STATIC_WORDS else f"{f.description} unknown"
        if feature in _STATIC_WORDS:
            yes, no = _STATIC_WORDS[feature]
            return yes if value >= 0.5 else no
        if feature == "age_years":
            return f"is {_num(value)} years old"
        return f"has {_num(value)} {f.description}" if feature != "medication_count" else f"takes {_num(value)} regular medications"
    if fam == "assessment":
        age = row.get(f.companion, float("nan"))
        label = f.description.removeprefix("last ")
        if _missing(value):
            label = _ASSESSMENT_SHORT.get(f.basis, label)
            return f"no {label} assessment on record"
        when = f" ({_num(age)} days ago)" if not _missing(age) else ""
        if f.basis in _ASSESSMENT_FLAGS:
            yes, no = _ASSESSMENT_FLAGS[f.basis]
            return f"{yes if value >= 0.5 else no}{when}"
        if f.basis == "loneliness_score":
            lonely = " (lonely)" if value >= 6 else ""
            return f"loneliness score {_num(value)} of 9{lonely}{when}"
        return f"{label} took {_num(value)} {f.unit}{when}".replace(" )", ")")
    if fam == "assessment_age":
        label = _ASSESSMENT_SHORT.get(f.basis, f.basis)
        if _missing(value):
            return f"no {label} assessment on record"
        return f"no {label} assessment for {_num(value)} days"
    if fam == "visit_count":
        who = {"timebank": "time-bank", "family": "family", "care": "care-staff"}[f.basis]
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
        what, span = _COUNT_WORDS[feature]
        n = int(round(value)) if fam != "visit_hours" else value
        if n == 0:
            return f"no {what[1]} {span}"
        return f"{_num(value)} {what[0] if n == 1 else what[1]} {span}"
    # Anything else (e.g. demand features): the description and the value.
    if _missing(value):
        return f"{f.description}: unknown"
    return f"{f.description}: {_with_unit(_num(value, f.unit), f.unit)}"
