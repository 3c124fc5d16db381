"""``python -m serving``: ``bentoml serve`` the service of ``MODELFACTORY_MODEL_NAME``.

The serving image's command: the classifier service for classifiers, the forecast service for forecasting model
sets, chosen exactly as ``modelfactory serve`` chooses locally
(:func:`modelfactory.serving_process.service_for`), on ``MODELFACTORY_HTTP_HOST``
and ``MODELFACTORY_HTTP_PORT``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from modelfactory.serving_process import service_for


def serve_command(environ: Mapping[str, str]) -> list[str]:
    model = environ.get("MODELFACTORY_MODEL_NAME", "").strip()
    if not model:
        raise SystemExit(
            "MODELFACTORY_MODEL_NAME is not set: which registered model should this serve?"
        )
    return ["bentoml", "serve", service_for(model),
            "--host", environ.get("MODELFACTORY_HTTP_HOST", "0.0.0.0"),
            "--port", environ.get("MODELFACTORY_HTTP_PORT", "3000")]


if __name__ == "__main__":
    command = serve_command(os.environ)
    print("modelfactory serving:", " ".join(command), file=sys.stderr, flush=True)
    os.execvp(command[0], command)
