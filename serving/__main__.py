"""``python -m modelfactory_serving``: ``bentoml serve`` the model named by
``MODELFACTORY_MODEL_NAME``.

The serving image's command and what ``modelfactory serve`` runs, on
``MODELFACTORY_HTTP_HOST`` (0.0.0.0 here: a container listens on every interface) and
``MODELFACTORY_HTTP_PORT``. Before BentoML starts the workers, this process claims the v2
gRPC and metrics ports for the service (:mod:`modelfactory.inference.protocol.port_claims`)
and keeps the claims through ``exec``: a port another service has is refused here, naming
the variable that moves it, instead of being shared with that service.
"""

from __future__ import annotations

import os
import socket
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


def claim_ports() -> list[socket.socket]:
    """This service's claims on its gRPC and metrics ports, to keep open while it serves."""
    from modelfactory.config import get_settings
    from modelfactory.inference.protocol.port_claims import claim_port

    serving = get_settings().serving
    wanted = [("metrics", serving.metrics_port, "MODELFACTORY_METRICS_PORT")]
    if serving.grpc_enabled:
        wanted.append(("v2 gRPC", serving.grpc_port, "MODELFACTORY_GRPC_PORT"))
    claims = [claim_port(what, serving.http_host, port, var) for what, port, var in wanted if port]
    return [claim for claim in claims if claim is not None]


if __name__ == "__main__":
    from modelfactory.errors import ModelFactoryError
    from modelfactory.inference.protocol.port_claims import REFUSED

    command = serve_command(os.environ)
    try:
        claims = claim_ports()  # inheritable: bentoml and its workers hold them after exec
    except ModelFactoryError as exc:  # a port taken, a setting that cannot be read
        raise SystemExit(f"{REFUSED}{exc}") from None
    print("modelfactory serving:", " ".join(command), file=sys.stderr, flush=True)
    os.execv(command[0], command)
