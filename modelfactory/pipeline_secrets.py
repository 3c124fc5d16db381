"""Secrets of pipeline runs: on a cluster they come from Kubernetes Secrets, never from pipeline
parameters (which the KFP UI shows and every run stores).

A compiled pipeline names the Secrets (their names are parameters, with the defaults below) and
KFP puts their keys into each task's environment (``kfp-kubernetes`` ``use_secret_as_env``,
optional: a Secret that does not exist sets nothing). The tasks then read:

- the MLflow account, ``MLFLOW_TRACKING_USERNAME`` and ``MLFLOW_TRACKING_PASSWORD``, which
  MLflow's client reads itself (the chart writes :data:`MLFLOW_SECRET` when told KFP's
  namespace);
- a database's password, joined into a URL parameter that names the user and no password
  (:func:`url_with_password`): batch scoring's ``to`` and ``data``, the anomaly batch's
  ``staging_url``.

On one machine nothing changes: the kfp local runner ignores the Secrets, and a URL with its
password in it is used as it is.
"""

from __future__ import annotations

import os

# The pipelines' MLflow account (keys username, password): mlflow.auth.pipelines.secretName.
MLFLOW_SECRET = "modelfactory-mlflow-pipelines"
MLFLOW_SECRET_ENV = {"username": "MLFLOW_TRACKING_USERNAME", "password": "MLFLOW_TRACKING_PASSWORD"}
# Database passwords, one Secret per pipeline, a key per URL parameter.
BATCH_SCORING_SECRET = "modelfactory-batch-scoring"
ANOMALY_SECRET = "modelfactory-anomaly"
DESTINATION_PASSWORD = "MODELFACTORY_DESTINATION_PASSWORD"  # key to-password: `to`
SOURCE_PASSWORD = "MODELFACTORY_SOURCE_PASSWORD"  # key data-password: `data`
STAGING_PASSWORD = "MODELFACTORY_STAGING_PASSWORD"  # key staging-password: `staging_url`
SECRET_KEYS = {
    DESTINATION_PASSWORD: "to-password",
    SOURCE_PASSWORD: "data-password",
    STAGING_PASSWORD: "staging-password",
}


def url_with_password(url: str, variable: str) -> str:
    """``url`` with the password in the environment variable ``variable`` for its user, when the
    URL is a database URL that names a user and no password; any other ``url`` as it is (a path,
    an http(s) URL, a URL with a password of its own)."""
    password = os.environ.get(variable)
    if not password or not url or "://" not in url or url.startswith(("http://", "https://")):
        return url
    import sqlalchemy as sa

    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return url
    if not parsed.username or parsed.password is not None:
        return url
    return parsed.set(password=password).render_as_string(hide_password=False)
