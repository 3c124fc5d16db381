"""`down` stops everything the node started, also after its parts were killed with kill -9.

Runs last in the tier (it stops the session's node): the kubelet, containerd and every
containerd shim are killed as a crashed run would leave them, the pods' processes keep
running orphaned, and one `tools/control-plane.sh down` from a fresh process must leave no
process, mount, cgroup, link or iptables rule of the node, and Docker's rules in place.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from tests.support.real_node import RealNode


def _pids(state_dir: Path, word: str) -> list[int]:
    """Processes whose command line names the state dir and ``word``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if f"{state_dir}/" in cmdline and word in cmdline:
            found.append(int(entry.name))
    return found


def _docker_forward_rules() -> list[str]:
    if shutil.which("iptables") is None:
        return []
    rules = subprocess.run(["iptables", "-w", "5", "-S", "FORWARD"], capture_output=True, text=True)
    return [r for r in rules.stdout.splitlines() if "DOCKER" in r or "docker0" in r]


def test_down_after_kill_9_leaves_nothing_of_the_node_behind(real_node: RealNode):
    docker_rules = _docker_forward_rules()
    running = real_node.cluster.get(
        "pods", "--all-namespaces", "--field-selector", "status.phase=Running"
    )
    assert running["items"], "no pod runs on the node: nothing for down to find"
    shims = _pids(real_node.state_dir, "containerd-shim-runc-v2")
    assert shims, "no containerd shim runs"
    victims = [
        *_pids(real_node.state_dir, "kubelet.yaml"),
        *_pids(real_node.state_dir, "containerd.toml"),
        *shims,
    ]
    for pid in victims:
        os.kill(pid, signal.SIGKILL)

    done = real_node.down()  # a fresh process, as after a killed test run
    assert done.returncode == 0, done.stderr[-3000:]
    assert real_node.leftovers() == ""
    for pid in victims:
        assert (
            not Path(f"/proc/{pid}/cmdline").exists()
            or not Path(f"/proc/{pid}/cmdline").read_bytes()
        )
    assert _docker_forward_rules() == docker_rules
