"""``python -m modelfactory.operator``: run the rollout operator (kopf) until stopped.

Watches ModelDeployments in ``MODELFACTORY_OPERATOR_NAMESPACE`` (every namespace when empty),
serves its liveness probe on ``:8081/healthz`` and its metrics on
``MODELFACTORY_OPERATOR_METRICS_PORT``. One replica at a time (kopf runs standalone, no peering).
"""

from __future__ import annotations

import logging
import os

import kopf

from modelfactory.config import get_settings
from modelfactory.operator import handlers  # noqa: F401  (registers the handlers)


def main() -> None:
    settings = get_settings().operator
    # One HTTP connection to MLflow per reconcile thread (ADR 0009: the operator at scale).
    os.environ.setdefault("MLFLOW_HTTP_POOL_MAXSIZE", str(max(10, settings.workers)))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    namespaces = [settings.namespace] if settings.namespace else []
    kopf.run(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=settings.liveness_endpoint or None,
    )


if __name__ == "__main__":
    main()
