"""Fixtures for the container tests: the Docker engine, the project's images, a real MLflow server.

These tests FAIL, never skip, when the engine or the images are missing or older than
the sources: CI must not pass without them. Run ``.ci/containers.sh`` (as root) to get
both. A developer without Docker opts out explicitly with
``MODELFACTORY_SKIP_CONTAINER_TESTS=1``; the skip reason then says what is not covered.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from modelfactory import __version__
from modelfactory.config import get_settings
from modelfactory.local.mlflow_server import EmbeddedMlflow
from modelfactory.local.ports import free_port

REPO = Path(__file__).resolve().parents[2]
SKIP_ENV = "MODELFACTORY_SKIP_CONTAINER_TESTS"
NOT_COVERED = (
    "the component image running the classification pipeline under kfp.local.DockerRunner, "
    "the serving image answering /predict under the chart's security settings, and the images' "
    "hygiene (non-root, no compiler, no pip cache)"
)
HOW_TO_GET_THEM = (
    "run `.ci/containers.sh` as root (installs docker.io and debootstrap, starts dockerd, builds "
    f"the base and both images; about 9 minutes cold, seconds when current), or set {SKIP_ENV}=1 "
    "to skip these tests knowingly"
)
# Every container a test starts carries this label, so the finalizers can remove stragglers.
TEST_LABEL = "io.modelfactory.test-session"


@dataclass(frozen=True)
class Images:
    components: str
    serving: str


@pytest.fixture(scope="session")
def docker_client():
    """A docker-py client to an engine that answers, or a failure that says how to get one."""
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{SKIP_ENV}=1: not covered: {NOT_COVERED}")
    try:
        import docker

        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # no package, no socket, no engine: all mean the same to the user
        pytest.fail(
            f"no Docker engine answers ({exc.__class__.__name__}: {exc}); {HOW_TO_GET_THEM}",
            pytrace=False,
        )
    yield client
    client.close()


@pytest.fixture(scope="session")
def images(docker_client) -> Images:
    """The component and serving images, present and built from the current sources."""
    import docker

    wanted = Images(
        components=get_settings().component_image, serving=f"modelfactory-serving:{__version__}"
    )
    missing = []
    for tag in (wanted.components, wanted.serving):
        try:
            docker_client.images.get(tag)
        except docker.errors.ImageNotFound:
            missing.append(tag)
    if missing:
        pytest.fail(f"image(s) {', '.join(missing)} not found; {HOW_TO_GET_THEM}", pytrace=False)
    # The script that builds them also knows whether they match the sources (a hash label).
    check = subprocess.run(
        ["bash", str(REPO / ".ci" / "containers.sh"), "check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check.returncode != 0:
        why = check.stdout.strip() or check.stderr.strip()
        pytest.fail(f"the images would test old code: {why}; {HOW_TO_GET_THEM}", pytrace=False)
    return wanted


@pytest.fixture(scope="session")
def session_label() -> dict[str, str]:
    return {TEST_LABEL: uuid.uuid4().hex[:12]}


@pytest.fixture(scope="session", autouse=True)
def _remove_leftover_containers(request, session_label) -> Iterator[None]:
    """However a test ends, no container it started keeps running."""
    yield
    if os.environ.get(SKIP_ENV) == "1":
        return
    try:
        import docker

        client = docker.from_env()
        for container in client.containers.list(
            all=True, filters={"label": [f"{TEST_LABEL}={session_label[TEST_LABEL]}"]}
        ):
            container.remove(force=True)
        client.close()
    except Exception:  # no engine: nothing can be running
        pass


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory, images) -> Iterator[str]:
    """A real MLflow server on the host's loopback; containers on the host network reach it."""
    home = tmp_path_factory.mktemp("mlflow-home")
    server = EmbeddedMlflow(home, host="127.0.0.1", port=free_port())
    url = server.start(timeout=300)
    yield url
    server.stop()
