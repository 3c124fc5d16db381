"""Forecasting steps: features, time split, the per-store model factory, evaluation, registration.

One pipeline run is one MLflow run. The stores are trained in shards (:func:`plan`,
:func:`train_shard`, one pipeline task each, in parallel on a cluster) and merged into one
model set (:func:`merge`). The model set (a Prophet model per store) is logged
as one pyfunc model (:mod:`modelfactory.forecasting.registered`), so a registered
version of ``store-sales`` is one consistent set. Per-store metrics are a run artifact;
the aggregate holdout errors are the run's ``holdout_mape`` / ``holdout_rmse`` and the
seasonal-naive baseline's ``baseline_holdout_*``; the holdout, with the forecast each day was
scored on, is ``holdout_data/``. The promotion gate compares MAPE (lower is better) of the new
set with its baseline, and with the champion on the store-days neither trained on
(:func:`gate_evidence`).

A store that fails (too little history, a fit error, not in the data) is named in the
run tag ``modelfactory.failed_stores`` and the artifact ``evaluation/failed_stores.json``;
the others carry on unless more than ``max_failure_share`` of the stores fail.

Its ~480 lines are the pipeline's steps in the order they run, each the body of one component,
as :mod:`modelfactory.classification.steps` keeps the classifier's.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd

# mlflow (~5 s to import) is imported by the steps that log: features and split start fast.
from modelfactory.data.identity import row_keys, unseen
from modelfactory.data.io import distinct_values, read_dataset, write_dataset
from modelfactory.forecasting import FORECASTING
from modelfactory.forecasting.config import ForecastConfig
from modelfactory.forecasting.evaluation import (
    aggregate_metrics,
    mape_difference_error,
    mean_store_mape,
)
from modelfactory.forecasting.factory import (
    FactoryError,
    FactoryResult,
    fit_stores,
    keep_fitted,
)
from modelfactory.forecasting.features import prophet_frame, split_by_store
from modelfactory.forecasting.model_set import merge_model_sets, read_manifest, save_model_set
from modelfactory.forecasting.shards import check_shards, plan_shards, stores_of_shard
from modelfactory.forecasting.split import StoreSplit, time_split
from modelfactory.promotion import Comparison, GateEvidence
from modelfactory.registration import register_behind_gate

GATE_METRIC = FORECASTING.gate
EXPERIMENT = FORECASTING.model_name
# A row is one store's day, whatever its sales say (ADR 0014).
ROW_IDENTITY = ("Store", "ds")


def parse_stores(stores: str | list[int] | None) -> list[int] | None:
    """'1, 2,3' -> [1, 2, 3]; empty -> None (all stores). A non-number is named in the error."""
    if stores is None or isinstance(stores, list):
        return stores
    ids = []
    for part in (p.strip() for p in stores.split(",")):
        if not part:
            continue
        if not part.isdigit():
            raise ValueError(
                f"stores: {part!r} is not a store id; give comma-separated integers, e.g. 1,2,3"
            )
        ids.append(int(part))
    return sorted(set(ids)) or None


def features(data_path: str, out_path: str, stores: str = "") -> dict:
    """Open days as Prophet rows (Store, ds, y, regressors), limited to ``stores`` when given."""
    frame = prophet_frame(read_dataset(data_path))
    wanted = parse_stores(stores)
    missing: dict[int, str] = {}
    if wanted is not None:
        present = set(frame["Store"].unique().tolist())
        missing = {s: "no open days with sales in the data" for s in wanted if s not in present}
        frame = frame[frame["Store"].isin(wanted)]
    write_dataset(frame, out_path)
    return {"rows": len(frame), "stores": int(frame["Store"].nunique()), "missing_stores": missing}


def split(
    features_path: str,
    train_path: str,
    holdout_path: str,
    holdout_weeks: int = 6,
    min_train_days: int = 180,
) -> dict:
    """Hold out each store's last ``holdout_weeks`` weeks; stores with too little history are
    skipped."""
    result = time_split(split_by_store(read_dataset(features_path)), holdout_weeks, min_train_days)
    parts: dict[str, list[pd.DataFrame]] = {"train": [], "holdout": []}
    for store, store_split in result.stores.items():
        parts["train"].append(store_split.train.assign(Store=store))
        parts["holdout"].append(store_split.holdout.assign(Store=store))
    for name, path in (("train", train_path), ("holdout", holdout_path)):
        frame = (
            pd.concat(parts[name], ignore_index=True)
            if parts[name]
            else pd.DataFrame(columns=["ds", "y", "Store"])
        )
        write_dataset(frame, path)
    return {
        "stores": len(result.stores),
        "skipped": {int(k): v for k, v in result.skipped.items()},
        "warnings": result.warnings,
        "train_rows": sum(len(f) for f in parts["train"]),
        "holdout_rows": sum(len(f) for f in parts["holdout"]),
    }


def read_splits(
    train_path: str, holdout_path: str, stores: list[int] | None = None
) -> dict[int, StoreSplit]:
    """Each store's train and holdout rows; with ``stores``, only theirs are read from the files."""
    where = None if stores is None else "Store"
    train = split_by_store(read_dataset(train_path, where, stores))
    holdout = split_by_store(read_dataset(holdout_path, where, stores))
    return {
        store: StoreSplit(train[store], holdout[store], holdout[store]["ds"].min())
        for store in sorted(train)
        if store in holdout
    }


def plan(train_path: str, n_shards: int) -> dict:
    """The shards that have stores (each becomes one training task) and their sizes.

    Reads the ``Store`` column only. Which store lands in which shard:
    :mod:`modelfactory.forecasting.shards`.
    """
    shards = plan_shards(distinct_values(train_path, "Store"), check_shards(n_shards))
    return {
        "shards": list(shards),
        "stores_per_shard": {str(k): len(v) for k, v in shards.items()},
    }


def train_shard(
    train_path: str,
    holdout_path: str,
    model_dir: str,
    shard: int = 0,
    n_shards: int = 1,
    config: ForecastConfig | None = None,
    n_jobs: int | None = None,
) -> dict:
    """Fit the stores of one shard (reading only their rows) and save them as a model set.

    A store that fails is recorded in the set's failures; whether the run may go on is
    decided when the shards are merged (:func:`merge`), over all stores.
    """
    config = config or ForecastConfig()
    mine = stores_of_shard(distinct_values(train_path, "Store"), shard, n_shards)
    splits = read_splits(train_path, holdout_path, mine)
    failures: dict[int, str] = {}
    models = keep_fitted(fit_stores(splits, config, n_jobs=n_jobs), failures, 1.0)
    save_model_set(
        model_dir,
        FactoryResult(
            config=config,
            models=models,
            failures=dict(sorted(failures.items())),
            warnings=[],
            metrics=aggregate_metrics({s: o.metrics for s, o in models.items()}),
        ),
        metadata={"shard": shard, "n_shards": n_shards},
    )
    return {
        "shard": shard,
        "n_shards": n_shards,
        "stores": len(models),
        "failed_stores": {str(k): v for k, v in sorted(failures.items())},
        "train_rows": sum(len(s.train) for s in splits.values()),
    }


def merge(
    shard_dirs: list[str],
    train_path: str,
    model_dir: str,
    tracking_uri: str = "",
    batch_id: str = "",
    source: str = "",
    known_failures: dict | None = None,
    warnings: list[str] | None = None,
    train_rows: int | None = None,
    experiment: str = EXPERIMENT,
) -> dict:
    """Merge the shards' model sets into one and log it to a new MLflow run as one model.

    ``known_failures`` are stores that never reached a shard (split skips, missing stores);
    with the shards' failures they count against ``max_failure_share``
    (:func:`~modelfactory.forecasting.model_set.merge_model_sets`).
    """
    import mlflow

    from modelfactory.forecasting.registered import log_model_set
    from modelfactory.registry import REFERENCE_DATA_PATH, resolve_tracking_uri

    if not shard_dirs:  # no store reached a shard: the split skipped them all
        failures = {int(k): v for k, v in (known_failures or {}).items()}
        raise FactoryError(failures, len(failures), 0.0)
    manifest = merge_model_sets(
        list(shard_dirs),
        model_dir,
        failures={int(k): v for k, v in (known_failures or {}).items()},
        warnings=warnings,
        metadata={"batch_id": batch_id, "source": source},
    )
    config = ForecastConfig.from_dict(manifest["config"])
    failures = {int(k): v for k, v in manifest["failures"].items()}
    mlflow.set_tracking_uri(resolve_tracking_uri(tracking_uri))
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=f"{experiment}-{batch_id}" if batch_id else None) as run:
        mlflow.set_tags(
            {
                "modelfactory.use_case": "forecasting",
                "modelfactory.batch_id": batch_id,
                "modelfactory.source": source,
                "modelfactory.failed_stores": ",".join(str(s) for s in sorted(failures)) or "none",
            }
        )
        params = {k: v for k, v in config.to_dict().items() if k != "extra"}
        mlflow.log_params(
            {
                **params,
                "stores_trained": len(manifest["stores"]),
                "stores_failed": len(failures),
                "shards": len(shard_dirs),
                "train_rows": train_rows if train_rows is not None else "",
            }
        )
        mlflow.log_artifact(
            train_path, REFERENCE_DATA_PATH
        )  # drift detection compares against this
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "failed_stores.json"
            report.write_text(
                json.dumps({str(k): v for k, v in sorted(failures.items())}, indent=2)
            )
            mlflow.log_artifact(str(report), "evaluation")
        model_uri = log_model_set(model_dir).model_uri
    return {
        "run_id": run.info.run_id,
        "model_uri": model_uri,
        "tracking_uri": mlflow.get_tracking_uri(),
        "stores": len(manifest["stores"]),
        "shards": len(shard_dirs),
        "failed_stores": {str(k): v for k, v in sorted(failures.items())},
    }


def train(
    train_path: str,
    holdout_path: str,
    model_dir: str,
    tracking_uri: str = "",
    batch_id: str = "",
    source: str = "",
    config: ForecastConfig | None = None,
    known_failures: dict | None = None,
    warnings: list[str] | None = None,
    n_jobs: int | None = None,
    n_shards: int = 1,
    experiment: str = EXPERIMENT,
) -> dict:
    """Every shard in turn, then the merge: the pipeline's steps in one process (benchmarks,
    tests, scripts). The pipeline runs the shards as parallel tasks instead."""
    with tempfile.TemporaryDirectory(prefix="shards-") as tmp:
        parts, rows = [], 0
        for shard in plan(train_path, n_shards)["shards"]:
            part = str(Path(tmp) / f"shard-{shard}")
            rows += train_shard(train_path, holdout_path, part, shard, n_shards, config, n_jobs)[
                "train_rows"
            ]
            parts.append(part)
        return merge(
            parts,
            train_path,
            model_dir,
            tracking_uri,
            batch_id,
            source,
            known_failures,
            warnings,
            rows,
            experiment,
        )


def evaluate(
    model_info: dict, model_dir: str, tracking_uri: str = "", holdout_path: str = ""
) -> dict:
    """Log per-store metrics (artifact) and the aggregate holdout errors of model and baseline;
    with ``holdout_path``, the holdout with the forecast each day was scored on
    (``holdout_data/``, for later gates)."""
    import mlflow

    from modelfactory.registry import HOLDOUT_DATA_PATH, resolve_tracking_uri

    mlflow.set_tracking_uri(resolve_tracking_uri(tracking_uri or model_info.get("tracking_uri")))
    manifest = read_manifest(model_dir)
    per_store = {int(s): record["metrics"] for s, record in manifest["stores"].items()}
    aggregate = aggregate_metrics(per_store)
    model = {
        "mape": aggregate["mean_mape"],
        "rmse": aggregate["pooled_rmse"],
        "median_mape": aggregate["median_mape"],
    }
    baseline = {
        "mape": aggregate["baseline_mean_mape"],
        "rmse": aggregate["baseline_pooled_rmse"],
        "median_mape": aggregate["baseline_median_mape"],
    }
    with mlflow.start_run(run_id=model_info["run_id"]):
        mlflow.log_metrics({f"holdout_{k}": v for k, v in model.items()})
        mlflow.log_metrics({f"baseline_holdout_{k}": v for k, v in baseline.items()})
        mlflow.log_metrics(
            {
                "stores_better_than_baseline_share": aggregate["share_better"],
                "holdout_days": aggregate["days"],
            }
        )
        with tempfile.TemporaryDirectory() as tmp:
            table = pd.DataFrame(
                [
                    {"store": s, **{k: v for k, v in m.items() if k != "yhat"}}
                    for s, m in sorted(per_store.items())
                ]
            )
            table.to_csv(Path(tmp) / "store_metrics.csv", index=False)
            (Path(tmp) / "holdout_metrics.json").write_text(
                json.dumps({"model": model, "baseline": baseline, "aggregate": aggregate}, indent=2)
            )
            mlflow.log_artifacts(tmp, "evaluation")
        if holdout_path:
            with tempfile.TemporaryDirectory() as tmp:
                write_dataset(holdout_forecasts(holdout_path, per_store), f"{tmp}/holdout")
                mlflow.log_artifact(f"{tmp}/holdout", HOLDOUT_DATA_PATH)
    return {"model": model, "baseline": baseline, "stores": len(per_store)}


def holdout_forecasts(holdout_path: str, per_store: dict[int, dict]) -> pd.DataFrame:
    """The holdout rows of the stores that have a model, each with the forecast it was scored on
    (``yhat``: the model fitted before the holdout, not the one refit on the full history)."""
    holdout = split_by_store(read_dataset(holdout_path))
    parts = []
    for store, metrics in sorted(per_store.items()):
        rows, forecast = holdout.get(store), metrics.get("yhat")
        if rows is None or forecast is None or len(forecast) != len(rows):
            continue  # a set trained before forecasts were kept, or on another holdout
        parts.append(rows.assign(Store=store, yhat=forecast))
    if not parts:
        return pd.DataFrame(columns=["ds", "y", "Store", "yhat"])
    return pd.concat(parts, ignore_index=True)


def gate_evidence(
    model_info: dict, model_name: str, champion_version: str, tracking_uri: str
) -> GateEvidence:
    """The new set and the champion scored (mean store MAPE) on the store-days neither trained on.

    The new set is scored by the forecasts its stores made before they were refit
    (``holdout_data/``'s ``yhat``), as its holdout figure was. Of this run's holdout, the champion
    forecasts the days it never trained on: not in its training data, and after the day its
    store's model ends, since a set refit on its full history trained on its holdout too. Of the
    champion's holdout (its sales, its logged forecasts), this run's forecasts of the days it did
    not train on.
    """
    from modelfactory.forecasting.registered import load_model_set
    from modelfactory.monitoring.reference import (
        NoReference,
        holdout_data,
        run_figures,
        training_data,
        version_figures,
    )
    from modelfactory.registry import HOLDOUT_DATA_PATH, Registry

    registry = Registry(tracking_uri)
    champion = version_figures(registry, model_name, champion_version)
    who = f"champion v{champion_version}"
    run = run_figures(registry, model_name, model_info["run_id"])
    ours = holdout_data(run)
    if ours is None or "yhat" not in ours.columns:
        missing = Comparison(0, 0, note=f"this run logged no forecasts in {HOLDOUT_DATA_PATH}/")
        return GateEvidence(champion_version, missing, missing)
    identity = list(ROW_IDENTITY)
    try:
        theirs = training_data(champion)
    except NoReference as exc:
        fresh = Comparison(0, len(ours), note=f"the days {who} trained on are unknown ({exc})")
    else:
        loaded = load_model_set(model_name, champion_version, tracking_uri).model
        new = unseen(ours, theirs, identity, "this run's holdout", f"{who}'s training data")
        fresh = _forecast_on(ours[new], loaded, len(ours), who)
    own = holdout_data(champion)
    if own is None or "yhat" not in own.columns:
        kept = Comparison(0, 0, note=f"{who} logged no forecasts in {HOLDOUT_DATA_PATH}/")
    else:
        new = unseen(own, training_data(run), identity, f"{who}'s holdout", "this run's data")
        forecasts = pd.Series(ours["yhat"].to_numpy(), index=row_keys(ours, identity))
        rows = own[new].assign(candidate=forecasts.reindex(row_keys(own[new], identity)).values)
        rows = rows[rows["candidate"].notna()]
        kept = _scored(
            rows, "candidate", "yhat", len(own), "were days this run trained on or did not forecast"
        )
    return GateEvidence(champion_version, fresh, kept)


def _forecast_on(rows: pd.DataFrame, champion, of_rows: int, who: str) -> Comparison:
    """The new set's forecasts of ``rows`` (``yhat``) and the champion's, over the store-days
    the champion's models had not reached (after each store's history end)."""
    stores = set(champion.stores())
    parts = []
    for store in sorted(set(rows["Store"].tolist()) & stores):
        store_model = champion.store_model(store)
        frame = rows[rows["Store"] == store]
        frame = frame[frame["ds"] > store_model.history_end]
        if frame.empty:
            continue
        store_model.model.uncertainty_samples = 0  # point forecasts only, as in training
        future = frame[["ds", *store_model.regressors]]
        parts.append(frame.assign(champion=store_model.model.predict(future)["yhat"].to_numpy()))
    left_out = f"were days {who} trained on or had no model for"
    if not parts:
        return Comparison(0, of_rows, left_out=left_out)
    return _scored(pd.concat(parts, ignore_index=True), "yhat", "champion", of_rows, left_out)


def _scored(rows: pd.DataFrame, new: str, old: str, of_rows: int, left_out: str) -> Comparison:
    """Both versions' mean store MAPE on the same store-days, from their forecast columns."""
    stores, sales = rows["Store"], rows["y"]
    candidate, days = mean_store_mape(stores, sales, rows[new])
    champion, _ = mean_store_mape(stores, sales, rows[old])
    noise = mape_difference_error(stores, sales, rows[new], rows[old])
    return Comparison(days, of_rows, candidate, champion, left_out, noise=noise)


def register(
    model_info: dict,
    holdout_path: str,
    model_name: str,
    margin: float = 0.0,
    tracking_uri: str = "",
    batch_id: str = "",
    promotion: str = "direct",
    min_rows: int = 0,
) -> dict:
    """Register the model set as challenger; the gate (MAPE, lower is better, on the store-days
    neither version trained on) may make it champion. ``holdout_path`` is the run's holdout (its
    forecasts are read back from the run); ``min_rows`` (0: the gate metric's) is the fewest
    store-days the gate judges on."""

    def gather(version: str, uri: str) -> GateEvidence:
        return gate_evidence(model_info, model_name, version, uri)

    stores = int(model_info.get("stores", 0))
    failed = model_info.get("failed_stores", {})
    summary = register_behind_gate(
        model_info,
        model_name,
        FORECASTING,
        gather,
        margin,
        tracking_uri,
        {
            "modelfactory.batch_id": batch_id,
            "modelfactory.stores": str(stores),
            "modelfactory.failed_stores": ",".join(failed) or "none",
        },
        promotion,
        min_rows or None,
    )
    return {**summary, "stores": stores, "failed_stores": failed}
