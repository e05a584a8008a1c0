"""The monitor's HTML report (with plots) and JSON summary, logged to MLflow beside the model's runs."""

from __future__ import annotations

import base64
import html
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from training.monitor import MonitorResult
from training.tracking import experiment_id, flat_metrics, tracking, write_json
from training.train import json_ready

COLOURS = {"ok": "#2e7d32", "watch": "#ef6c00", "retrain": "#c62828"}


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _plots(name: str, m: dict[str, Any]) -> list[tuple[str, str]]:
    """(title, base64 PNG) pairs for one model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = m.get("_plots") or {}
    out = []
    if "drift" in data:
        d = data["drift"].head(15).iloc[::-1]
        fig, ax = plt.subplots(figsize=(7, 0.28 * len(d) + 1.4))
        ax.barh(d["feature"], d["psi"], color=[COLOURS["retrain"] if x == "major" else
                                               COLOURS["watch"] if x == "minor" else "#607d8b"
                                               for x in d["drift"]])
        for x, style in ((0.1, ":"), (0.25, "--")):
            ax.axvline(x, color="grey", linestyle=style, linewidth=1)
        ax.set_xlabel("PSI, latest weeks vs training window")
        ax.set_title(f"{name}: the most shifted features")
        out.append(("Feature drift", _png(fig)))
        fig, ax = plt.subplots(figsize=(6, 3.2))
        bins = np.quantile(np.concatenate([data["p_reference"], data["p_current"]]), np.linspace(0, 1, 31))
        bins = np.unique(bins)
        ax.hist(data["p_reference"], bins=bins, density=True, alpha=0.5, label="training window")
        ax.hist(data["p_current"], bins=bins, density=True, alpha=0.5, label="latest weeks")
        ax.set_xscale("log")
        ax.set_xlabel("predicted probability")
        ax.legend()
        ax.set_title(f"{name}: predicted risk")
        out.append(("Prediction drift", _png(fig)))
    if "daily" in data:
        d = data["daily"]
        fig, ax = plt.subplots(figsize=(7, 3.2))
        ax.plot(d.index, d["actual"], marker="o", label="actual")
        ax.plot(d.index, d["forecast"], marker="o", label="forecast")
        ax.plot(d.index, d["naive"], linestyle=":", label="seasonal naive")
        ax.set_ylabel("requests a day, all series (summed over origins)")
        ax.legend()
        ax.set_title(f"{name}: forecasts against arrived actuals")
        fig.autofmt_xdate()
        out.append(("Forecast error", _png(fig)))
    return out


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return "—" if not np.isfinite(x) else f"{x:.4g}"
    return html.escape(str(x))


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(result: MonitorResult) -> str:
    s = result.summary()
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>TwinCare monitor</title>",
        "<style>body{font-family:sans-serif;max-width:980px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;font-size:13px;margin:.5em 0}td,th{border:1px solid #ccc;"
        "padding:2px 6px;text-align:right}th{background:#f3f3f3}.v{color:#fff;padding:2px 8px;"
        "border-radius:4px}</style></head><body>",
        f"<h1>Model monitor, as of {html.escape(s['as_of'])}</h1>",
        f"<p>History: <code>{html.escape(s['history_dir'])}</code></p>",
    ]
    for name, m in result.models.items():
        verdict = m["verdict"]
        parts.append(f"<h2>{html.escape(name)} v{html.escape(str(m.get('version', '?')))} "
                     f"<span class='v' style='background:{COLOURS[verdict]}'>{verdict}</span></h2>")
        parts.append("<ul>" + "".join(f"<li>{html.escape(r)}</li>" for r in m["reasons"]) + "</ul>")
        if m.get("kind") == "risk":
            est, chk, real = m["estimated"], m["test_window_check"], m["realised"]
            parts.append(_table([
                {"": "test window", "estimated AUROC": chk["estimated_auroc"],
                 "realised AUROC": chk["realised_auroc"], "difference": chk["difference"]},
                {"": "latest weeks", "estimated AUROC": est["current"]["auroc"],
                 "90% range": f"{est['current']['auroc_low']:.3f}–{est['current']['auroc_high']:.3f}"},
                {"": "matured weeks", "estimated AUROC": real.get("estimated_auroc"),
                 "realised AUROC": real.get("auroc")},
            ], ["", "estimated AUROC", "90% range", "realised AUROC", "difference"]))
            fd = m["feature_drift"]
            parts.append(f"<p>{fd['minor_or_major']} of {fd['features']} features shifted (PSI ≥ 0.1), "
                         f"{fd['major']} strongly (≥ 0.25; {fd.get('depth_only', 0)} more only because their window has filled since training), {fd['major_not_tested_under']} of them beyond what the test window showed, carrying {fd['importance_major']:.0%} of the "
                         f"model's importance. Prediction PSI {m['prediction_drift']['psi']:.3f}.</p>")
            parts.append(_table(fd["per_feature"][:15], ["feature", "psi", "psi_full_history", "psi_as_deep", "depth_only", "psi_vs_validated", "new_shift", "ks_statistic", "ks_pvalue",
                                                         "unknown_reference", "unknown_current",
                                                         "mean_reference", "mean_current", "importance"]))
        elif m.get("kind") == "forecast":
            c, b = m["current"], m["backtest"]
            parts.append(_table([
                {"": "arrived actuals", "WAPE": c["wape"], "naive WAPE": c["wape_naive"],
                 "coverage": c["coverage"], "bias": c["bias"]},
                {"": "backtest", "WAPE": b["wape"], "naive WAPE": b["wape_naive"], "coverage": b["coverage"]},
            ], ["", "WAPE", "naive WAPE", "coverage", "bias"]))
        for title, png in _plots(name, m):
            parts.append(f"<h3>{html.escape(title)}</h3><img alt='{html.escape(title)}' "
                         f"src='data:image/png;base64,{png}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def monitor_metrics(m: dict[str, Any]) -> dict[str, float]:
    """The figures worth plotting over time in MLflow."""
    out = {"verdict_level": float(["ok", "watch", "retrain"].index(m["verdict"]))}
    if m.get("kind") == "risk":
        out.update(flat_metrics("drift", {k: v for k, v in m["feature_drift"].items() if k != "per_feature"}))
        out.update(flat_metrics("prediction", m["prediction_drift"]))
        out.update(flat_metrics("estimated", m["estimated"]["current"]))
        out.update(flat_metrics("test_window", m["test_window_check"]))
        out.update(flat_metrics("realised", {k: v for k, v in m["realised"].items() if k != "weeks"}))
    elif m.get("kind") == "forecast":
        out.update(flat_metrics("current", m["current"]))
        out.update(flat_metrics("", {"wape_ratio": m["wape_ratio"], "new_series_share": m["new_series_share"]}))
    return out


def write_report(result: MonitorResult, out_dir: str | Path) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"html": out / "monitor.html", "json": out / "monitor.json"}
    paths["html"].write_text(render_html(result))
    paths["json"].write_text(json.dumps(json_ready(result.summary()), indent=2))
    return paths


def log_monitor(result: MonitorResult, tracking_uri: str) -> dict[str, str]:
    """One run per monitored model in that model's experiment: verdict tags, metrics, the model's
    JSON summary and the whole HTML report. Returns model -> run id."""
    import mlflow

    summary = json_ready(result.summary())
    page = render_html(result)
    runs = {}
    with tracking(tracking_uri) as client, tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "monitor.html"
        report.write_text(page)
        for name, m in summary["models"].items():
            exp = experiment_id(client, name, tracking_uri)
            tags = {"kind": "monitor", "model": name, "model_version": str(m.get("version", "")),
                    "verdict": m["verdict"], "monitor_as_of": result.as_of,
                    "history_dir": result.history_dir,
                    "fired": ",".join(m.get("fired", [])) or "none"}
            with mlflow.start_run(experiment_id=exp, run_name=f"monitor {result.as_of}", tags=tags) as run:
                mlflow.log_metrics(monitor_metrics(result.models[name]))
                mlflow.log_artifact(str(write_json(Path(tmp) / "monitor.json", {**summary, "models": {name: m}})))
                mlflow.log_artifact(str(report))
            runs[name] = run.info.run_id
    return runs
