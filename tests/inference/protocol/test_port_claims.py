"""A serving process claims its gRPC and metrics ports; a second one is refused, naming the
variable that moves its port (the processes themselves: tests/serving/test_metrics_port.py)."""

from __future__ import annotations

import socket

import pytest

from modelfactory.inference.protocol.port_claims import PortTaken, claim_port
from modelfactory.local.ports import free_port


def test_a_port_claimed_by_one_service_is_refused_to_the_next_until_it_stops():
    port = free_port()
    first = claim_port("metrics", "127.0.0.1", port, "MODELFACTORY_METRICS_PORT")
    assert first is not None and first.get_inheritable()  # held across exec by BentoML
    with pytest.raises(PortTaken) as refused:
        claim_port("metrics", "0.0.0.0", port, "MODELFACTORY_METRICS_PORT")
    assert str(refused.value) == (
        f"the metrics port {port} is taken by another modelfactory service on this machine: "
        "set MODELFACTORY_METRICS_PORT to a free port for this one"
    )
    first.close()
    again = claim_port("metrics", "127.0.0.1", port, "MODELFACTORY_METRICS_PORT")
    assert again is not None
    again.close()


def test_a_port_another_program_listens_on_is_refused():
    with socket.create_server(("127.0.0.1", 0)) as other:
        port = other.getsockname()[1]
        with pytest.raises(PortTaken, match=f"127.0.0.1:{port} is in use by another program: "):
            claim_port("v2 gRPC", "127.0.0.1", port, "MODELFACTORY_GRPC_PORT")


def test_workers_of_the_service_that_claimed_a_port_still_share_it():
    """The claim is no bind: the service's own workers listen with SO_REUSEPORT, as before."""
    port = free_port()
    claim = claim_port("metrics", "127.0.0.1", port, "MODELFACTORY_METRICS_PORT")
    workers = []
    for _ in range(2):
        worker = socket.socket()
        worker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        worker.bind(("127.0.0.1", port))
        worker.listen()
        workers.append(worker)
    for sock in [*workers, claim]:
        if sock is not None:
            sock.close()
