"""KFP pipelines, one per use case (``<use case>.py``), each compiled to the YAML beside it.

``python -m modelfactory_pipelines.compile`` (``make pipelines``) writes the YAML; it is
what a user uploads to the KFP UI, and what ``modelfactory run`` runs on one machine.

Secrets are no pipeline parameters: a parameter names a Kubernetes Secret and the tasks that
need it read its keys from their environment (:mod:`modelfactory.pipeline_secrets`).
"""

from kfp import kubernetes

from modelfactory.pipeline_secrets import MLFLOW_SECRET_ENV, SECRET_KEYS

# In the cluster the chart's MLflow Service answers here (release "modelfactory", namespace
# "modelfactory").
CLUSTER_MLFLOW_URI = "http://modelfactory-mlflow.modelfactory.svc.cluster.local:5000"


def with_mlflow_account(secret, *tasks):
    """Each task reads the pipelines' MLflow account from the Secret ``secret`` names (a pipeline
    parameter); a Secret that does not exist sets nothing (an open MLflow needs none)."""
    for task in tasks:
        kubernetes.use_secret_as_env(
            task, secret_name=secret, secret_key_to_env=MLFLOW_SECRET_ENV, optional=True
        )


def with_database_password(secret, variable: str, *tasks):
    """Each task reads a database password into ``variable`` from its key of the Secret ``secret``
    names; the task joins it into the URL parameter that names the user."""
    for task in tasks:
        kubernetes.use_secret_as_env(
            task,
            secret_name=secret,
            secret_key_to_env={SECRET_KEYS[variable]: variable},
            optional=True,
        )
