"""Batch scoring: plan (resolve the version, cut the partitions) → score each partition (in
parallel) → publish the batch in one transaction.

Scores a registered model's input in bulk: every record of ``data`` (a file, a folder of
Parquet files, an http(s) URL, or a database with ``query``) for a classifier, or every
store × ``horizon_days`` for the store forecaster. The partitions (row groups or files of
the input; shards of stores) are scored by a ``dsl.ParallelFor`` (on a cluster one pod per
partition, at most ``MAX_PARALLEL_PARTITIONS`` at once, a failed one retried), each writing
its results and rejects to a part; ``publish-batch`` writes all parts to ``to`` (a
SQLAlchemy URL or a .parquet path), replacing the rows of ``batch_id`` in one transaction. On a
cluster a database URL (``to``, or ``data`` with a ``query``) names its user and no password:
the tasks read the passwords from the Secret ``database_secret`` names, and the MLflow account
from ``mlflow_credentials_secret`` (:mod:`modelfactory.pipeline_secrets`).
Upload ``batch_scoring.yaml`` in the KFP UI; on one machine ``modelfactory score`` runs the
same steps with progress bars.
"""

from kfp import dsl
from modelfactory_components.plan_batch.component import plan_batch
from modelfactory_components.publish_batch.component import publish_batch
from modelfactory_components.score_partition.component import score_partition
from modelfactory_pipelines import CLUSTER_MLFLOW_URI, with_database_password, with_mlflow_account

from modelfactory.pipeline_secrets import (
    BATCH_SCORING_SECRET,
    DESTINATION_PASSWORD,
    MLFLOW_SECRET,
    SOURCE_PASSWORD,
)
from modelfactory.use_cases import CLASSIFICATION

# Partition tasks running at once on a cluster (pods); a compile-time constant for KFP.
MAX_PARALLEL_PARTITIONS = 16
PARTITION_RETRIES = 2


@dsl.pipeline(
    name="batch-scoring",
    description="Score a registered model's input in bulk into a table or Parquet, by batch id.",
)
def batch_scoring_pipeline(
    to: str,
    model_name: str = CLASSIFICATION.model_name,
    version: str = "",
    data: str = "",
    query: str = "",
    key_column: str = "",
    batch_id: str = "",
    n_partitions: int = 8,
    horizon_days: int = 42,
    chunk_rows: int = 100_000,
    mlflow_tracking_uri: str = CLUSTER_MLFLOW_URI,
    mlflow_credentials_secret: str = MLFLOW_SECRET,
    # The Secret whose keys to-password and data-password are the passwords of the users `to`
    # and `data` name (database URLs given without their passwords).
    database_secret: str = BATCH_SCORING_SECRET,
) -> str:
    planned = plan_batch(
        model_name=model_name,
        version=version,
        data=data,
        query=query,
        n_partitions=n_partitions,
        horizon_days=horizon_days,
        mlflow_tracking_uri=mlflow_tracking_uri,
    )
    with dsl.ParallelFor(planned.outputs["Output"], parallelism=MAX_PARALLEL_PARTITIONS) as part:
        scored = score_partition(
            batch=planned.outputs["batch"],
            model_name=model_name,
            data=data,
            query=query,
            key_column=key_column,
            partition=part,
            horizon_days=horizon_days,
            chunk_rows=chunk_rows,
            mlflow_tracking_uri=mlflow_tracking_uri,
        ).set_retry(num_retries=PARTITION_RETRIES, backoff_duration="30s", backoff_factor=2.0)
        with_mlflow_account(mlflow_credentials_secret, scored)
        with_database_password(database_secret, SOURCE_PASSWORD, scored)
    published = publish_batch(
        batch=planned.outputs["batch"],
        parts=dsl.Collected(scored.outputs["part"]),
        to=to,
        model_name=model_name,
        batch_id=batch_id,
        horizon_days=horizon_days,
        mlflow_tracking_uri=mlflow_tracking_uri,
    )
    with_mlflow_account(mlflow_credentials_secret, planned, published)
    with_database_password(database_secret, SOURCE_PASSWORD, planned)
    with_database_password(database_secret, DESTINATION_PASSWORD, published)
    return published.output
