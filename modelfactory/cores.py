"""How many cores a process may keep busy (a batch's threads, the model factory's workers): its
CPU affinity, bounded by its cgroup's CPU quota (a Kubernetes CPU limit), cgroup v2 or v1.

A pod limited to 2 CPUs on a 32-core node sees 32 cores in its affinity; 32 threads on a
quota of 2 would only take turns. A limit of 1.5 CPUs counts as 2: the half core is worth
a thread. ``MODELFACTORY_THREADS`` overrides both (a benchmark's 1 thread against all).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def usable_cores(cgroup: Path = CGROUP) -> int:
    forced = os.environ.get("MODELFACTORY_THREADS", "").strip()
    if forced.isdigit() and int(forced) > 0:
        return int(forced)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = cpu_quota(cgroup)
    return max(1, min(cores or 1, quota) if quota else cores or 1)


def cpu_quota(cgroup: Path = CGROUP) -> int | None:
    """The CPU limit in whole cores (rounded up), or None when there is none."""
    v2 = _read(cgroup / "cpu.max")  # "max 100000" or "150000 100000"
    if v2:
        limit, _, period = v2.partition(" ")
        return None if limit == "max" else _cores(limit, period)
    for folder in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):  # v1: -1 means no limit
        limit = _read(cgroup / folder / "cpu.cfs_quota_us")
        if limit:
            if limit.startswith("-"):
                return None
            return _cores(limit, _read(cgroup / folder / "cpu.cfs_period_us"))
    return None


def _cores(limit: str, period: str) -> int | None:
    try:
        return max(1, math.ceil(int(limit) / int(period)))
    except (ValueError, ZeroDivisionError):
        return None


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""
