"""Model cards: one per registered version, written from what the registry and its run hold.

A card says what the model is for and who uses it, what it was trained on (window, history,
its fingerprint when the run records one), its features, its test metrics and slices against the
baselines, its calibration, the explanation check, the promotion gate's decision and the known
limits. It is logged as `model_card.md` and `model_card.html` in the version's run, and the
version carries a `model_card` tag naming the file.
"""

from __future__ import annotations

import html
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from features.registry import get_feature
from models.registry import get_spec
from models.spec import RiskSpec
from training.tracking import tracking

CARD_MD = "model_card.md"
CARD_HTML = "model_card.html"


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)
    table: tuple[list[str], list[list[Any]]] | None = None


def _num(x: Any, digits: int = 3) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _artifact(client, run_id: str, path: str) -> Any:
    """A JSON artifact of the run, or None when it has none."""
    from mlflow.exceptions import MlflowException

    try:
        with tempfile.TemporaryDirectory() as tmp:
            local = client.download_artifacts(run_id, path, tmp)
            return json.loads(Path(local).read_text())
    except (MlflowException, OSError, ValueError):
        return None


def _fingerprint(run) -> str | None:
    for source in (run.data.tags, run.data.params):
        for k, v in source.items():
            if "fingerprint" in k and v:
                return f"{v} ({k})"
    return None


def _kind_line(tags: dict[str, str]) -> str:
    """What the version is: trained here, a reference community's champion, or the baseline."""
    kind = tags.get("kind", "local")
    if kind == "reference":
        return (f"kind: reference, the champion v{tags.get('reference_version', '?')} of "
                f"`{tags.get('reference', '?')}`, its calibration kept, scored on this community's test window")
    if kind == "baseline":
        return f"kind: baseline, `{tags.get('baseline', '?')}` served as a model"
    return "kind: local, trained on this community's history"


def _latest_monitor(client, experiment_id: str, version: str) -> Any:
    runs = client.search_runs([experiment_id],
                              f"tags.kind = 'monitor' and tags.model_version = '{version}'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None


def card_sections(name: str, version: str, tracking_uri: str) -> list[Section]:
    """The card of one registered version, section by section."""
    spec = get_spec(name)
    with tracking(tracking_uri) as client:
        mv = client.get_model_version(name, version)
        run = client.get_run(mv.run_id)
        aliases = list(getattr(mv, "aliases", []) or [])
        art = {p: _artifact(client, run.info.run_id, p) for p in (
            "metrics.json", "calibration.json", "explanation_check.json", "promotion.json",
            "shap_importance.json", "splits.json", "backtest.json", "intervals.json")}
        monitor_run = _latest_monitor(client, run.info.experiment_id, version)
    p, t, m = run.data.params, run.data.tags, run.data.metrics
    s: list[Section] = []

    if isinstance(spec, RiskSpec):
        use = (f"Ranks the residents of a community time bank by {spec.title.lower()} — "
               f"{spec.description[0].lower() + spec.description[1:]} — so that care managers can "
               "offer proactive visits by volunteers to those who need them first.")
        users = "Care managers (ranked list, resident page, reasons in words); time-bank coordinators " \
                "(the visits it opens). Administrators read this card."
    else:
        use = (f"{spec.description} Sets the scarcity of volunteer help per grid (and so the time "
               "credits a task offers) and lets coordinators plan the coming two weeks.")
        users = "Time-bank coordinators and care managers; the credit policy of the service."
    s.append(Section("Intended use", [use, f"Users: {users}"], [
        "Not a diagnosis and not a decision about a person: a care manager decides what to do.",
        "Meant for the community it was trained on; see the known limits before using it elsewhere.",
    ]))

    s.append(Section("Version", bullets=[
        f"model `{name}` version {version}" + (f" (aliases: {', '.join('@' + a for a in aliases)})" if aliases else ""),
        f"run `{run.info.run_id}`, trained {_when(run.info.start_time)}",
        f"feature schema hash `{t.get('feature_schema_hash', '?')}`",
        _kind_line(t),
    ]))

    window = []
    if isinstance(spec, RiskSpec):
        for part in ("train", "val", "test"):
            span = p.get(f"split.{part}_as_of")
            if span:
                window.append(f"{part}: weekly as-of dates {span.strip('[]').replace(chr(39), '')} "
                              f"({p.get(f'split.{part}_dates', '?')} dates, {p.get(f'rows_{part}', '?')} rows)")
        window.append(f"label: {spec.description} (horizon {spec.horizon_days} days); splits are "
                      f"separated by at least the horizon (mode: {p.get('split.mode', '?')})")
    else:
        window.append(f"fitted on counts up to {p.get('cutoff', '?')}; backtest window {t.get('test_window', '?')}")
    window.append(f"history `{t.get('history_dir') or p.get('history_dir', '?')}`, twin id `{t.get('twin_id') or '—'}`")
    window.append(f"history fingerprint: {_fingerprint(run) or 'not recorded by this run'}")
    s.append(Section("Training data", bullets=window))

    names = spec.feature_names()
    imp = art["shap_importance.json"] or {}
    ranked = sorted(names, key=lambda n: -float(imp.get(n, 0.0)))
    rows = []
    for n in ranked:
        f = get_feature(n)
        rows.append([f"`{n}`", f.description, f.window, _num(float(imp[n]), 4) if n in imp else "—"])
    s.append(Section("Features", [f"{len(names)} features, strongest first (mean |SHAP| on the test window)."],
                     table=(["feature", "what it measures", "window", "mean abs SHAP"], rows)))

    if isinstance(spec, RiskSpec):
        met = art["metrics.json"] or {}
        cols = ["auroc", "auprc", "brier", "recall_at_capacity", "calibration_error"]
        table = []
        for key in ["model", *[b.name for b in spec.baselines]]:
            if key in met:
                table.append([key if key != "model" else f"**{name}**", *[_num(met[key].get(c)) for c in cols]])
        s.append(Section("Test-window metrics against the baselines",
                         [f"The latest {p.get('split.test_dates', '?')} weekly as-of dates, never seen in "
                          f"training or validation. The promotion gate compares with `{spec.baselines[0].name}`."],
                         table=(["", *cols], table)))
        sl = met.get("slices") or {}
        overall = (met.get("model") or {}).get("auroc")
        s.append(Section("Slices", ["AUROC and Brier per age band, sex and living situation."],
                         table=(["slice", "rows", "prevalence", "auroc", "brier"],
                                [[k, _num(v.get("rows"), 0), _num(v.get("prevalence")), _num(v.get("auroc")),
                                  _num(v.get("brier"), 4)] for k, v in sl.items()])))
        cal = art["calibration.json"] or {}
        s.append(Section("Calibration", bullets=[
            f"method: {cal.get('method', '?')} fitted on the validation window "
            f"({', '.join(f'{k}={_num(v, 4)}' for k, v in cal.items() if isinstance(v, float))})",
            f"expected calibration error on the test window: {_num(m.get('test_calibration_error'), 4)}",
            "reliability curve: `reliability.png` in this run",
        ]))
        ex = art["explanation_check.json"] or {}
        s.append(Section("Explanation check", [
            "How often the twin's planted cause of a high-risk resident is among the top reasons served."
        ], bullets=[
            f"rows checked: {ex.get('rows', 0)} ({ex.get('selection', '—')})",
            f"top-3 hit rate {_num(ex.get('hit_rate'))}, top-1 {_num(ex.get('top1_hit_rate'))}, "
            f"three reasons drawn at random {_num(ex.get('chance_rate'))}",
        ] + _naming(ex.get("naming") or {}) if ex.get("rows")
            else [ex.get("note", "not run (the history has no planted causes)"), *_naming(ex.get("naming") or {})]))
    else:
        bt = art["backtest.json"] or {}
        s.append(Section("Backtest against seasonal naive", [
            f"Rolling origin: {bt.get('origins', '?')} origins x 1–14 days ahead from {bt.get('cutoff', '?')}."],
            table=(["", "WAPE", "MASE", "interval coverage"],
                   [[f"**{name}**", _num(bt.get("wape")), _num(bt.get("mase")), _num(bt.get("coverage"))],
                    ["seasonal naive", _num(bt.get("wape_naive")), _num(bt.get("mase_naive")), "—"]])))
        iv = art["intervals.json"] or {}
        s.append(Section("Intervals", bullets=[
            f"nominal coverage {_num(iv.get('coverage'), 2)}, from per-horizon quantiles of scaled residuals "
            "on a calibration window"]))

    promo = art["promotion.json"]
    if promo:
        s.append(Section("Promotion gate", [
            f"Decision: **{'promoted to @champion' if promo.get('promoted') else 'kept as @challenger'}**"
            + (f" (champion before: v{promo['previous_champion']})" if promo.get("previous_champion") else "")],
            bullets=list(promo.get("reasons") or [])))
    else:
        s.append(Section("Promotion gate", ["Not gated yet (`twincare promote` decides)."]))

    if monitor_run is not None:
        mt = monitor_run.data.tags
        s.append(Section("Latest monitoring", bullets=[
            f"as of {mt.get('monitor_as_of')}: **{mt.get('verdict')}** (tests fired: {mt.get('fired')})",
            f"run `{monitor_run.info.run_id}` holds the report (`monitor.html`)"]))

    limits = [
        "Trained on the community's digital twin" + (" (simulated): real communities differ; "
                                                      "recalibrate on real data before use" if t.get("twin_id") else ""),
        "Inputs from home sensors and wearables: a firmware update or a new sensor changes what a feature "
        "means; `twincare monitor` watches for it.",
    ]
    if isinstance(spec, RiskSpec):
        limits.append(f"Labels mature {spec.horizon_days} days after the as-of date, so realised performance "
                      "lags; the label-free estimate relies on calibration holding.")
        weak = [k for k, v in ((met or {}).get("slices") or {}).items()
                if v.get("auroc") is not None and overall is not None and v["auroc"] < overall - 0.05]
        if weak:
            limits.append(f"Weaker on: {', '.join(weak)} (AUROC more than 0.05 below overall).")
    else:
        limits.append("A series needs 28 days of counts; new grids are forecast from the global pattern only.")
    s.append(Section("Known limits", bullets=limits))
    return s


def _when(ms: int | None) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp((ms or 0) / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def to_markdown(title: str, sections: list[Section]) -> str:
    out = [f"# Model card: {title}", ""]
    for sec in sections:
        out += [f"## {sec.title}", ""]
        for para in sec.paragraphs:
            out += [para, ""]
        if sec.bullets:
            out += [f"- {b}" for b in sec.bullets] + [""]
        if sec.table:
            cols, rows = sec.table
            out.append("| " + " | ".join(cols) + " |")
            out.append("|" + "---|" * len(cols))
            out += ["| " + " | ".join(str(c).replace("|", "/") for c in r) + " |" for r in rows]
            out.append("")
    return "\n".join(out)


def _inline(text: str) -> str:
    """`code` and **bold** of the Markdown text, escaped."""
    import re

    t = html.escape(text)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", t)


def to_html(title: str, sections: list[Section]) -> str:
    out = ["<!doctype html><html><head><meta charset='utf-8'>",
           f"<title>Model card: {html.escape(title)}</title>",
           "<style>body{font-family:sans-serif;max-width:900px;margin:2em auto;color:#222}"
           "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px}"
           "th{background:#f3f3f3}</style></head><body>",
           f"<h1>Model card: {html.escape(title)}</h1>"]
    for sec in sections:
        out.append(f"<h2>{html.escape(sec.title)}</h2>")
        out += [f"<p>{_inline(para)}</p>" for para in sec.paragraphs]
        if sec.bullets:
            out.append("<ul>" + "".join(f"<li>{_inline(b)}</li>" for b in sec.bullets) + "</ul>")
        if sec.table:
            cols, rows = sec.table
            out.append("<table><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in cols) + "</tr>"
                       + "".join("<tr>" + "".join(f"<td>{_inline(str(c))}</td>" for c in r) + "</tr>"
                                 for r in rows) + "</table>")
    out.append("</body></html>")
    return "\n".join(out)


def model_card(name: str, version: str, tracking_uri: str) -> dict[str, str]:
    """Markdown and HTML of a version's card."""
    spec = get_spec(name)
    sections = card_sections(spec.name, str(version), tracking_uri)
    title = f"{spec.title} ({spec.name} v{version})"
    return {"markdown": to_markdown(title, sections), "html": to_html(title, sections)}


def log_model_card(name: str, version: str, tracking_uri: str) -> dict[str, str]:
    """Write the card into the version's run (replacing an older one) and tag the version."""
    spec = get_spec(name)
    card = model_card(spec.name, str(version), tracking_uri)
    with tracking(tracking_uri) as client, tempfile.TemporaryDirectory() as tmp:
        mv = client.get_model_version(spec.name, str(version))
        for file, text in ((CARD_MD, card["markdown"]), (CARD_HTML, card["html"])):
            path = Path(tmp) / file
            path.write_text(text)
            client.log_artifact(mv.run_id, str(path))
        client.set_model_version_tag(spec.name, str(version), "model_card", CARD_MD)
    return card


def log_all_cards(tracking_uri: str, names: list[str] | None = None) -> dict[str, list[str]]:
    """Refresh the card of every registered version of every (or the named) model."""
    from models.registry import SPECS

    out: dict[str, list[str]] = {}
    with tracking(tracking_uri) as client:
        versions = {n: sorted((str(v.version) for v in client.search_model_versions(f"name = '{n}'")), key=int)
                    for n in (names or list(SPECS))}
    for n, vs in versions.items():
        for v in vs:
            log_model_card(n, v, tracking_uri)
        out[n] = vs
    return out


def _naming(n: dict) -> list[str]:
    """The cause named first on high-band test rows, against the largest SHAP sum and the most
    common cause."""
    if not n.get("rows"):
        return []
    by = "the cause reader" if n.get("named_by") == "cause_reader" else "the largest SHAP sum"
    where = f" of {n['judged_on']}" if n.get("judged_on") else ""
    out = [f"cause named first ({by}) right for {_num(n.get('named_right'))} of {n['rows']} high-band rows{where}; "
           f"largest SHAP sum {_num(n.get('largest_attribution_right'))}, always the most common cause "
           f"{_num(n.get('most_common_share'))}"]
    if n.get("reader_right") is not None:
        out.append(f"cause reader {_num(n['reader_right'])}, over the largest SHAP sum "
                   f"{_num(n.get('reader_over_largest_attribution'))} [{_num(n.get('reader_over_largest_attribution_lo'))}, "
                   f"{_num(n.get('reader_over_largest_attribution_hi'))}]: "
                   + ("served" if n.get("reader_kept") else "not served (the interval reaches zero)"))
    return out
