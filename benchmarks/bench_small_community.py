"""Which kind of champion a small community gets, and whether it is at least as good as the baseline.

    python -m benchmarks.bench_small_community --histories H1 H2 ... [--reference WORKDIR]
                                               [--boot 200] [--out FILE]

Each HISTORY is a twin (e.g. `twincare simulate --residents 300 --days 730 --seed S`). For every
risk model of the registry the candidates are: the local model, fitted on the twin's training rows;
with `--reference`, the @champion of a reference community (a `twincare demo-train` WORKDIR, e.g.
the 2,000-resident default twin), its calibration kept; and the gate's baseline served as a model
(`training.risk.fit_baseline_model`). The champion is chosen as `twincare retrain` chooses it
(`training.candidates.choose`): a candidate passes when its AUROC gain over the baseline reaches
the spec's margin and the gain's 95% interval (residents resampled) lies above zero (and for a
Brier-gated model the same for the Brier reduction); the passing candidate with the highest AUROC
serves, else the baseline model. Reported per twin and model:
AUROC and Brier of the local model, the baseline and the baseline model with 95% intervals, the
gains with their intervals, the champion's kind, and the served champion's AUROC gain over the
baseline (its lower bound is what "at least as good as the baseline" is read from).
Result: benchmarks/results/small_community.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

RESULT = Path(__file__).parent / "results" / "small_community.json"


def cell(name: str, history, history_dir: Path, boot: int, reference: str | None = None) -> dict:
    from features.pipeline import build_features
    from models.base import LOCAL_KIND, REFERENCE_KIND, BoosterParams
    from training import evaluate as ev
    from training.candidates import choose
    from training.config import SplitConfig
    from training.data import risk_dataset, risk_spec
    from training.risk import fit_baseline_model, fit_risk

    spec = risk_spec(name)
    params = BoosterParams()
    t0 = time.perf_counter()
    ds = risk_dataset(name, history, SplitConfig(), features=lambda dates: build_features(history, dates))
    res = fit_risk(ds, params)
    served_baseline = fit_baseline_model(ds, seed=params.seed)
    test = ds.part("test")
    base = spec.baselines[0].name
    scores = {"baseline": res.test_scores[base].to_numpy(), "model": res.test_scores["model"].to_numpy(),
              "baseline_model": spec.predict_proba(served_baseline, test)}
    if reference:
        from models.registry import load_champion

        scores["reference"] = spec.predict_proba(load_champion(name, reference), test)
    iv = ev.resident_bootstrap(test["resident_id"].to_numpy(), test["label"].to_numpy(int), scores,
                               reference="baseline", n_boot=boot, seed=params.seed)
    scored_as = {LOCAL_KIND: "model", REFERENCE_KIND: "reference"}
    choice = choose(spec.promotion, {k: iv[v] for k, v in scored_as.items() if v in iv})
    kind = choice.best
    champion = iv[scored_as.get(kind, "baseline_model")]
    return {
        "model": name, "residents": int(history.residents["resident_id"].nunique()),
        "test_rows": int(len(test)), "test_events": int(test["label"].sum()),
        "test_window": ds.plan.describe()["test_as_of"], "margin": spec.promotion.auroc_over_baseline,
        "intervals": iv, "passing": choice.passing, "champion_kind": kind,
        "champion_auroc": champion["auroc"], "champion_auroc_lo": champion["auroc_lo"],
        "champion_auroc_hi": champion["auroc_hi"],
        "champion_gain": champion.get("auroc_gain"), "champion_gain_lo": champion.get("auroc_gain_lo"),
        "champion_gain_hi": champion.get("auroc_gain_hi"),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main(argv: list[str] | None = None) -> None:
    from features.pipeline import load_history
    from models.registry import risk_specs
    from training.tracking import read_manifest

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--histories", nargs="+", required=True)
    ap.add_argument("--boot", type=int, default=200)
    ap.add_argument("--reference", help="demo-train WORKDIR (or tracking URI) of a reference community")
    ap.add_argument("--out", default=str(RESULT))
    a = ap.parse_args(argv)
    reference = a.reference
    if reference:
        from training.reference import reference_uri

        reference = reference_uri(reference)
    out = []
    for h in a.histories:
        history = load_history(h)
        manifest = read_manifest(h)
        for name in risk_specs():
            c = cell(name, history, Path(h), a.boot, reference)
            c["seed"] = manifest.get("seed")
            c["community_size"] = manifest.get("residents")  # residents at a time (as simulated)
            out.append(c)
            print(f"seed {c['seed']} {name:10s} {c['champion_kind']:8s} "
                  f"model {c['intervals']['model']['auroc']:.3f} "
                  f"[{c['intervals']['model']['auroc_lo']:.3f}, {c['intervals']['model']['auroc_hi']:.3f}] "
                  f"baseline {c['intervals']['baseline']['auroc']:.3f} "
                  f"[{c['intervals']['baseline']['auroc_lo']:.3f}, {c['intervals']['baseline']['auroc_hi']:.3f}] "
                  f"gain {c['intervals']['model']['auroc_gain']:+.3f} "
                  f"[{c['intervals']['model']['auroc_gain_lo']:+.3f}, {c['intervals']['model']['auroc_gain_hi']:+.3f}] "
                  + (f"reference {c['intervals']['reference']['auroc']:.3f} "
                     f"[{c['intervals']['reference']['auroc_lo']:.3f}, {c['intervals']['reference']['auroc_hi']:.3f}] "
                     if "reference" in c["intervals"] else "")
                  + f"-> champion {c['champion_auroc']:.3f} "
                  f"(gain {c['champion_gain']:+.3f} [{c['champion_gain_lo']:+.3f}, {c['champion_gain_hi']:+.3f}])",
                  flush=True)
        _write(Path(a.out), a.reference, out)  # after each twin: a long run keeps what it measured
    print(f"wrote {a.out}")


def _write(path: Path, reference: str | None, cells: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"reference": reference, "cells": cells}, indent=1,
                               default=lambda v: None if v != v else v))


if __name__ == "__main__":
    main()
