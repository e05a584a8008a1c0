"""The registry of model specs, and loading a registered version from MLflow.

`SPECS` is the one list of models: every other room iterates it (training, promotion, serving,
the nightly batch, the actions policy). Adding a model = one module with a spec + one line here.

The booster is stored with MLflow's native LightGBM flavour; its calibration, feature order and
schema hash travel as JSON metadata in the model's MLmodel file (no pickles).
"""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from models import demand, fall_risk, isolation
from models.base import LoadedModel
from models.spec import ForecastSpec, ModelSpec, RiskSpec

SPECS: dict[str, ModelSpec] = {s.name: s for s in (fall_risk.SPEC, isolation.SPEC, demand.SPEC)}
METADATA_KEY = "twincare"
BOOSTER_FILE = "model.lgb"
CHECKSUM_TAG = "model_sha256"
# a version trained with a twin's planted causes at hand carries a cause reader (models.causes),
# a file of its run; the registry keeps its digest, as the booster's
READER_CHECKSUM_TAG = "cause_reader_sha256"


def default_tracking_uri(workdir: str | Path) -> str:
    """The embedded MLflow store of a work directory: SQLite backend `WORKDIR/mlflow.db`."""
    return f"sqlite:///{Path(workdir).resolve() / 'mlflow.db'}"


def get_spec(name: str) -> ModelSpec:
    """The spec of a model by its name or command-line name (`fall-risk`)."""
    spec = SPECS.get(name) or SPECS.get(name.replace("-", "_"))
    if spec is None:
        raise KeyError(f"unknown model {name!r}; models are {', '.join(s.cli_name for s in SPECS.values())}")
    return spec


def model_names() -> tuple[str, ...]:
    return tuple(SPECS)


def risk_specs() -> dict[str, RiskSpec]:
    """The per-resident risk models, in registry order."""
    return {n: s for n, s in SPECS.items() if isinstance(s, RiskSpec)}


def forecast_specs() -> dict[str, ForecastSpec]:
    return {n: s for n, s in SPECS.items() if isinstance(s, ForecastSpec)}


@contextlib.contextmanager
def registered(spec: ModelSpec) -> Iterator[ModelSpec]:
    """Add a spec for the duration (a model defined outside this package, e.g. in a test)."""
    if spec.name in SPECS:
        raise ValueError(f"a model named {spec.name!r} is already registered")
    SPECS[spec.name] = spec
    try:
        yield spec
    finally:
        SPECS.pop(spec.name, None)


class ChampionError(RuntimeError):
    """The model to serve is missing or does not fit the code; the message says which and why."""


def model_metadata(
    name: str,
    feature_names: list[str],
    schema_hash: str,
    calibration: dict[str, Any],
    extra: dict[str, Any] | None = None,
    twin_id: str = "",
) -> dict[str, Any]:
    """The JSON block written into the MLmodel file when a model is logged."""
    return {
        METADATA_KEY: {
            "model": name,
            "feature_names": list(feature_names),
            "feature_schema_hash": schema_hash,
            "calibration": calibration,
            "extra": extra or {},
            "twin_id": twin_id,
        }
    }


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _probe_booster(path: Path) -> str | None:
    """Load a booster file in a child process (a malformed file can crash LightGBM's loader);
    None when it loads, else what went wrong."""
    code = "import sys, lightgbm; lightgbm.Booster(model_file=sys.argv[1])"
    try:
        done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                              errors="replace", timeout=120)
    except subprocess.TimeoutExpired:
        return "loading it did not finish in 120 s"
    if done.returncode == 0:
        return None
    last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
    return f"LightGBM cannot load it ({last[:200]})" if done.returncode > 0 else f"loading it crashed (signal {-done.returncode})"


def _check_digest(where: str, path: Path, recorded: str) -> None:
    """Refuse a file whose digest is not the one recorded at registration."""
    actual = file_sha256(path)
    if actual != recorded:
        raise ChampionError(f"{where} does not match the checksum recorded at registration "
                            f"({actual[:12]} != {recorded[:12]}): it was changed or truncated; "
                            "retrain or restore it")


def _verified_booster(name: str, version: str, alias: str, path: Path, recorded: str | None):
    """The booster in `path`, after checking it is the file registered: its digest against the
    one recorded at registration, or (versions registered without one) a load in a child process."""
    import lightgbm as lgb

    where = f"model {name!r} version {version} (@{alias}): {BOOSTER_FILE}"
    if not path.exists():
        raise ChampionError(f"{where} is missing")
    if recorded:
        _check_digest(where, path, recorded)
    else:
        problem = _probe_booster(path)
        if problem:
            raise ChampionError(f"{where} is not a valid booster: {problem}")
    try:
        return lgb.Booster(model_file=str(path))
    except lgb.basic.LightGBMError as exc:
        raise ChampionError(f"{where} is not a valid booster: {exc}") from None


def load_version(name: str, tracking_uri: str, alias: str = "champion",
                 version: str | None = None) -> LoadedModel:
    """Load `models:/<name>@<alias>` (or a given version) without checking the schema."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        mv = (client.get_model_version(name, str(version)) if version is not None
              else client.get_model_version_by_alias(name, alias))
    except MlflowException as exc:
        if version is not None:
            raise ChampionError(f"model {name!r}: no version {version} in {tracking_uri}") from exc
        raise ChampionError(
            f"model {name!r}: no version has the alias @{alias} in {tracking_uri} "
            f"(train and promote it first: `twincare train` then `twincare promote {name}`)"
        ) from exc
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=client.get_model_version_download_uri(name, mv.version),
            tracking_uri=tracking_uri,
        )
    except (MlflowException, OSError) as exc:
        raise ChampionError(
            f"model {name!r} version {mv.version} (@{alias}): artifacts cannot be read: {exc}"
        ) from exc
    try:
        meta = (Model.load(local).metadata or {}).get(METADATA_KEY)
    except (OSError, MlflowException, ValueError, TypeError, AttributeError) as exc:
        raise ChampionError(
            f"model {name!r} version {mv.version} (@{alias}): its MLmodel file cannot be read: {exc}"
        ) from None
    if not meta:
        raise ChampionError(
            f"model {name!r} version {mv.version} (@{alias}): no {METADATA_KEY!r} metadata "
            "(feature names, schema hash, calibration); it was not logged by twincare"
        )
    booster = _verified_booster(name, str(mv.version), alias, Path(local) / BOOSTER_FILE,
                                (mv.tags or {}).get(CHECKSUM_TAG))
    feature_names = list(meta["feature_names"])
    reader_digest = (mv.tags or {}).get(READER_CHECKSUM_TAG)
    return LoadedModel(
        name=name,
        version=str(mv.version),
        booster=booster,
        feature_names=feature_names,
        schema_hash=str(meta["feature_schema_hash"]),
        calibration=dict(meta.get("calibration") or {}),
        extra=dict(meta.get("extra") or {}),
        run_id=mv.run_id,
        cause_reader=(_verified_reader(name, str(mv.version), alias, mv.run_id, tracking_uri, reader_digest,
                                       feature_names) if reader_digest else None),
    )


def _verified_reader(name: str, version: str, alias: str, run_id: str, tracking_uri: str, recorded: str,
                     feature_names: list[str]):
    """The version's cause reader, after checking it is the file registered and reads this
    model's inputs; a missing, changed or unreadable file is refused by name."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    from models.causes import READER_FILE, CauseReader, CauseReaderError

    where = f"model {name!r} version {version} (@{alias}): {READER_FILE}"
    try:
        path = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"runs:/{run_id}/{READER_FILE}",
                                                        tracking_uri=tracking_uri))
    except (MlflowException, OSError) as exc:
        raise ChampionError(f"{where} cannot be read: {exc}") from None
    _check_digest(where, path, recorded)
    from features.registry import feature_set

    spec = get_spec(name)
    causes = tuple(feature_set(spec.feature_set).causes) if isinstance(spec, RiskSpec) else None
    try:
        return CauseReader.from_json(path.read_text(encoding="utf-8", errors="replace"), model=name,
                                     feature_names=feature_names, causes=causes, where=where)
    except CauseReaderError as exc:
        raise ChampionError(str(exc)) from None


def check_schema(loaded: LoadedModel, alias: str = "champion") -> LoadedModel:
    """Raise ChampionError when the model was trained on a feature set the code no longer has."""
    spec = get_spec(loaded.name)
    code_hash = spec.schema_hash()
    if loaded.schema_hash != code_hash:
        code_names = spec.feature_names()
        added = [n for n in code_names if n not in loaded.feature_names]
        removed = [n for n in loaded.feature_names if n not in code_names]
        detail = []
        if added:
            detail.append(f"code adds {', '.join(added[:5])}")
        if removed:
            detail.append(f"code drops {', '.join(removed[:5])}")
        if not detail:
            detail.append("same names, different order, dtype or window")
        raise ChampionError(
            f"model {loaded.name!r} version {loaded.version} (@{alias}): feature schema hash "
            f"{loaded.schema_hash} differs from the code's {code_hash} ({'; '.join(detail)}); "
            "retrain and promote it"
        )
    return loaded


def load_champion(name: str, tracking_uri: str, alias: str = "champion") -> LoadedModel:
    """The `@champion` version of a registered model, checked against the code's feature schema."""
    if name not in SPECS:
        raise ChampionError(f"unknown model {name!r}; registered models are {', '.join(SPECS)}")
    return check_schema(load_version(name, tracking_uri, alias), alias)


def alias_target(name: str, tracking_uri: str, alias: str = "champion") -> str | None:
    """The version `models:/<name>@<alias>` points at now (None when no version has it)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


CARD_FILES = {"md": "model_card.md", "html": "model_card.html"}


def load_card(name: str, tracking_uri: str, version: str, fmt: str = "md") -> str:
    """The model card logged with a registered version (Markdown or HTML).

    Raises LookupError naming what is missing (no such version, or no card logged yet)."""
    import tempfile

    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    if fmt not in CARD_FILES:
        raise ValueError(f"format must be one of {', '.join(CARD_FILES)}, got {fmt!r}")
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        mv = client.get_model_version(name, str(version))
    except MlflowException:
        raise LookupError(f"model {name!r} has no version {version}") from None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            local = client.download_artifacts(mv.run_id, CARD_FILES[fmt], tmp)
            return Path(local).read_text()
    except (MlflowException, OSError):
        raise LookupError(f"model {name!r} version {version} has no card yet "
                          f"(`twincare model-card {name} --version {version}` writes it)") from None
