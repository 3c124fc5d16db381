"""Fixtures of the node tier: a control plane with one real node, for the whole session.

``real_node`` starts ``tools/control-plane.sh up --real-node`` in a state dir of its own
(the kwok tier's control plane keeps its fake nodes; a real node would run their pods) and
stops it at the end, failing if anything of the node is left on the machine. It yields a
:class:`tests.support.real_node.RealNode`: the cluster, ``import_images`` (Docker's images
into the node's containerd), ``node_port_url`` and ``port_forward`` (Services on 127.0.0.1).

Where a node cannot run (not root, no cgroups, no Docker engine for the images), every test
here is SKIPPED with the reason and what is not covered, never counted as passed. Parts not
built (``make node-tools``) or a node that does not come up are failures.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelfactory import __version__
from tests.support.real_node import (
    NOT_COVERED,
    RealNode,
    node_parts_missing,
    started_real_node,
    why_not_here,
)

SERVING_IMAGE = f"modelfactory-serving:{__version__}"


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", "node: runs pods on a real node (tools/control-plane.sh up --real-node)"
    )


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if "tests/node/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.node)


_session_node: RealNode | None = None
_not_run: str | None = None


@pytest.fixture(scope="session")
def real_node(tmp_path_factory) -> Iterator[RealNode]:
    global _session_node, _not_run
    reason = why_not_here()
    if reason:
        _not_run = reason
        pytest.skip(f"real node not run: {reason}; not covered: {NOT_COVERED}")
    missing = node_parts_missing()
    if missing:
        pytest.fail(
            f"the real node's parts are not built: {', '.join(missing)}; build them with "
            "`make node-tools` as root (tools/node/build.sh)",
            pytrace=False,
        )
    # A short path: containerd's socket lives in it (unix sockets allow 108 bytes).
    with started_real_node(tmp_path_factory.mktemp("node")) as node:
        _session_node = node
        yield node


@pytest.fixture(scope="session")
def serving_image(real_node) -> str:
    """The project's serving image, imported into the node (it also carries `mlflow server`)."""
    real_node.import_images(SERVING_IMAGE)
    return SERVING_IMAGE


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """One line where a CI log's reader looks: whether the node tier ran, and its figures."""
    if _not_run:
        terminalreporter.write_sep("-", "NODE TESTS NOT RUN")
        terminalreporter.write_line(f"{_not_run}; not covered: {NOT_COVERED}")
    elif _session_node is not None:
        n = _session_node
        imports = ", ".join(f"{i} {s:.0f}s" for i, s in n.imported.items()) or "none"
        terminalreporter.write_sep(
            "-",
            f"node tests ran on a real node (Kubernetes {n.cluster.server_version}; "
            f"up --real-node {n.up_seconds:.0f}s; images imported: {imports})",
        )
        for what, seconds in n.timings.items():
            terminalreporter.write_line(f"  {what}: {seconds:.0f}s")
