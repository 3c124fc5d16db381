"""One service per port: a serving process claims its gRPC and metrics ports before its
workers bind them.

Each worker of a service listens on the gRPC and metrics ports with ``SO_REUSEPORT``, so the
kernel spreads connections over the workers (ADR 0001). The kernel lets any process of the
same user join such a port, so a second service started on the same port would join too,
and a scrape or a call would reach either service at random. The service's main process
(``python -m modelfactory_serving``) therefore claims each port before BentoML starts its
workers, and holds the claim as long as the service runs:

- a claim is an abstract Unix socket named after the port (Linux; scoped to the network
  namespace, as the port is, and released by the kernel when the last process of the
  service exits, however it exits), so a second modelfactory service is refused;
- a trial bind without ``SO_REUSEPORT`` finds a port another program already listens on,
  before any worker tries and fails.

Either refusal is a :class:`PortTaken` naming the variable that moves the port; the entry
point prints it on a line starting with :data:`REFUSED` (``ServingProcess`` shows that line).
"""

from __future__ import annotations

import errno
import socket
import sys

from modelfactory.errors import ModelFactoryError

REFUSED = "modelfactory serving: refused: "


class PortTaken(ModelFactoryError):
    """The port is served already; the message names the setting that moves this one."""


def claim_port(what: str, host: str, port: int, variable: str) -> socket.socket | None:
    """Claim ``port`` for this service; keep the returned socket open (and inheritable: it
    survives exec) for as long as the service runs. ``what`` names the port in messages
    (``"metrics"``)."""
    claim = _claim(what, port, variable)
    _check_free(what, host, port, variable)
    return claim


def _claim(what: str, port: int, variable: str) -> socket.socket | None:
    if not sys.platform.startswith("linux"):  # no abstract sockets: the trial bind only
        return None
    claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        claim.bind(f"\0modelfactory-serving-port-{port}")
    except OSError as exc:
        claim.close()
        if exc.errno != errno.EADDRINUSE:
            raise
        raise PortTaken(
            f"the {what} port {port} is taken by another modelfactory service on this "
            f"machine: set {variable} to a free port for this one"
        ) from None
    claim.set_inheritable(True)
    return claim


def _check_free(what: str, host: str, port: int, variable: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as trial:
        # As the workers' sockets do: a connection of an earlier run in TIME_WAIT is no owner.
        trial.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            trial.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise PortTaken(
                f"the {what} port {host}:{port} is in use by another program: set {variable} "
                "to a free port"
            ) from None
