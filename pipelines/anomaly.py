"""Daily taxi-ride anomaly detection: ingest → validate → features → DBSCAN → flags to the staging
table.

Upload ``anomaly.yaml`` (compiled from this file) in the KFP UI and schedule it with
:func:`create_daily_recurring_run`, or run it on one machine with
``modelfactory run anomaly --data rides.csv [--batch-date 2023-01-01]`` and schedule
that with ``modelfactory schedule anomaly``.
"""

from pathlib import Path

from kfp import dsl
from modelfactory_components.detect_outliers.component import detect_outliers
from modelfactory_components.ingest_data.component import ingest_data
from modelfactory_components.ride_features.component import ride_features
from modelfactory_components.validate_data.component import validate_data
from modelfactory_components.write_outlier_flags.component import write_outlier_flags
from modelfactory_pipelines import CLUSTER_MLFLOW_URI, with_database_password, with_mlflow_account

from modelfactory.anomaly.schedule import DailySchedule
from modelfactory.pipeline_secrets import ANOMALY_SECRET, MLFLOW_SECRET, STAGING_PASSWORD
from modelfactory.use_cases import ANOMALY as CASE

COMPILED = Path(__file__).with_name("anomaly.yaml")
RECURRING_RUN_NAME = f"{CASE.model_name}-daily"


@dsl.pipeline(
    name="taxi-anomaly-detection",
    description="Flag anomalous taxi rides of one day with DBSCAN and write the flags to SQL.",
)
def anomaly_pipeline(
    source: str = "",
    n_synthetic_rows: int = CASE.synthetic_rows,
    batch_date: str = "",
    eps: float = 0.5,
    min_samples: int = 10,
    seed: int = 42,
    # A SQLAlchemy URL; on a cluster without its password: the run's tasks read that from the key
    # staging-password of the Secret database_secret names.
    staging_url: str = "",
    mlflow_tracking_uri: str = CLUSTER_MLFLOW_URI,
    mlflow_credentials_secret: str = MLFLOW_SECRET,
    database_secret: str = ANOMALY_SECRET,
) -> str:
    ingest = ingest_data(
        use_case=CASE.name,
        source=source,
        n_synthetic_rows=n_synthetic_rows,
        seed=seed,
        mlflow_tracking_uri=mlflow_tracking_uri,
    )
    validate = validate_data(use_case=CASE.name, raw=ingest.outputs["raw"])
    features = ride_features(data=validate.outputs["validated"], batch_date=batch_date)
    detect = detect_outliers(
        features=features.outputs["features"],
        eps=eps,
        min_samples=min_samples,
        batch_id=ingest.outputs["Output"],
        source=source,
        mlflow_tracking_uri=mlflow_tracking_uri,
    )
    write = write_outlier_flags(
        scored=detect.outputs["scored"], staging_url=staging_url, run_id=detect.outputs["Output"]
    )
    with_mlflow_account(mlflow_credentials_secret, ingest, detect)
    with_database_password(database_secret, STAGING_PASSWORD, write)
    return write.output


def create_daily_recurring_run(
    client,
    source: str,
    experiment_name: str = CASE.model_name,
    schedule: DailySchedule | None = None,
    staging_url: str = "",
    mlflow_tracking_uri: str = CLUSTER_MLFLOW_URI,
    eps: float = 0.5,
    min_samples: int = 10,
    package_path: Path = COMPILED,
):
    """Create the KFP recurring run of the daily batch (``client`` is a ``kfp.Client``).

    One run at a time (``max_concurrency=1``: a slow day never overlaps the next) and no
    catch-up of missed days after a pause (each day is re-runnable on its own, the
    write is idempotent per batch date). ``source`` names the day's file; the batch date
    scored is the day most of its rides are from.
    """
    schedule = schedule or DailySchedule()
    experiment = client.create_experiment(name=experiment_name)
    return client.create_recurring_run(
        experiment_id=experiment.experiment_id,
        job_name=RECURRING_RUN_NAME,
        description=(
            f"taxi-ride anomaly batch, daily at {schedule.hour:02d}:{schedule.minute:02d} UTC"
        ),
        cron_expression=schedule.cron(with_seconds=True),
        max_concurrency=1,
        no_catchup=True,
        pipeline_package_path=str(package_path),
        params={
            "source": source,
            "staging_url": staging_url,
            "mlflow_tracking_uri": mlflow_tracking_uri,
            "eps": eps,
            "min_samples": min_samples,
        },
        enabled=True,
    )
