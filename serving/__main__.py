"""``python -m modelfactory_serving``: ``bentoml serve`` the model named by
``MODELFACTORY_MODEL_NAME``.

The serving image's command and what ``modelfactory serve`` runs, on
``MODELFACTORY_HTTP_HOST`` (0.0.0.0 here: a container listens on every interface) and
``MODELFACTORY_HTTP_PORT``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

SERVICE = "modelfactory_serving.service:ModelService"


def serve_command(environ: Mapping[str, str]) -> list[str]:
    if not environ.get("MODELFACTORY_MODEL_NAME", "").strip():
        raise SystemExit(
            "MODELFACTORY_MODEL_NAME is not set: which registered model should this serve?"
        )
    return [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        SERVICE,
        "--host",
        environ.get("MODELFACTORY_HTTP_HOST", "0.0.0.0"),
        "--port",
        environ.get("MODELFACTORY_HTTP_PORT", "3000"),
    ]


if __name__ == "__main__":
    command = serve_command(os.environ)
    print("modelfactory serving:", " ".join(command), file=sys.stderr, flush=True)
    os.execv(command[0], command)
