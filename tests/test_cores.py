"""How many cores a batch keeps busy: affinity, bounded by a cgroup v2 or v1 CPU quota."""

from __future__ import annotations

import pytest

from modelfactory.cores import cpu_quota, usable_cores


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu.max": "150000 100000\n"}, 2),  # 1.5 CPUs: the half core is worth a thread
        ({"cpu.max": "50000 100000\n"}, 1),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "400000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 4),
        ({"cpu,cpuacct/cpu.cfs_quota_us": "200000", "cpu,cpuacct/cpu.cfs_period_us": "100000"}, 2),
        ({}, None),
    ],
)
def test_a_cgroup_cpu_limit_is_read_in_whole_cores(tmp_path, files, quota):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cpu_quota(tmp_path) == quota


def test_a_pod_limited_to_one_cpu_walks_on_one_thread(tmp_path, monkeypatch):
    monkeypatch.delenv("MODELFACTORY_THREADS", raising=False)
    (tmp_path / "cpu.max").write_text("100000 100000\n")
    assert usable_cores(tmp_path) == 1
    monkeypatch.setenv("MODELFACTORY_THREADS", "3")  # an explicit choice wins
    assert usable_cores(tmp_path) == 3
