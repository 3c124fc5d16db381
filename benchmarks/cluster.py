"""The chart on a real node (issue 18): install to first answer, serving through the Service
against the same image run with `docker run`, and rollouts decided by the operator in its pod.

Prints figures, asserts nothing. Starts ``tools/control-plane.sh up --real-node`` in a state
dir of its own (docs/adr/0010-real-node.md; one node per machine: run it under
``flock /tmp/realnode.lock`` where others run nodes too), imports the project's images and the
node's PostgreSQL image into the node's containerd, and installs charts/modelfactory as
tests/node/test_chart.py does (tests/node/values-node.yaml: two serving pods of one worker,
NodePorts on 127.0.0.1, 5 s analysis intervals, operator tick 2 s) in a namespace enforcing Pod
Security ``restricted``. A champion is trained on the host and registered as the MLflow admin
(the password from the chart's Secret) through MLflow's NodePort. Sections, chosen with
``--section install,throughput,rollout`` (the install always runs: the others need it), run in
the order install, rollout, throughput:

- install: the clock starts with ``helm install``; printed are ``--wait`` done (PostgreSQL,
  MLflow with its migration and accounts init containers, the operator Ready), the champion
  trained and registered (alias set), and the first 200 from /predict through the serving
  Service's NodePort (the client polls every 0.25 s). What comes before the clock (the node up,
  the images imported) is printed apart. The named alternative: the same image started by
  ``docker run`` to its first answer (throughput section), with the champion already there.
- rollout: under steady traffic through the Service (``--rate`` requests/s, two records each,
  on a fixed schedule over 4 keep-alive connections; every answer's model version recorded), a
  good challenger (another training, left as challenger by the promotion gate) is rolled out
  50% -> 100% in two judged steps by the operator in its pod, reading both pods' /metrics, and
  promoted; then a challenger trained on flipped labels, set as challenger by hand, is rolled
  back. Per challenger: alias set -> decision (the ModelDeployment's history ``finishedAt``), in
  seconds and analysis intervals (closed intervals from the history's tallies), the operator's
  own startedAt -> finishedAt, the clients' first and last answer from the challenger, and
  every request the clients saw fail (expected 0). The named alternative: the good
  challenger's promotion (the rollback's time as a ratio of it).
- throughput: the serving ModelDeployment scaled to one pod, and the same image
  (modelfactory-serving:<version>) run with ``docker run`` from the live pod's own spec (its
  command, environment, user, read-only root, no capabilities, memory limit, its emptyDirs as
  host directories, its Secret volumes' files), on the host network and 127.0.0.1, pointed at
  the same MLflow (its NodePort) and the same PostgreSQL for the prediction log (the pod's
  address on the node's bridge: the Service's DNS name resolves in pods only). One worker each,
  no CPU limit on either. Closed-loop HTTP JSON /predict of one record (benchmarks/loadgen.py,
  keep-alive connections opened in turn) at each ``--concurrency``, ``--rounds`` interleaved
  rounds of ``--seconds`` (the order reversed every other round), medians; the ratio is the
  median of each round's pair. What differs: the Service's path (NodePort on 127.0.0.1: DNAT
  and masquerade by kube-proxy's iptables rules, conntrack, a veth into the pod's network
  namespace) against loopback in the host's namespace; the pod's cgroup (cpu.shares from its
  100m request, under the node's kubepods) against Docker's (1024 shares); the container
  runtimes (containerd 2 + runc of the node, Docker's own).

The machine's load (CPU of this benchmark, the node's processes and the container against
everything else) is printed per section. Cleans up on any exit (Ctrl-C and SIGTERM too): the
container removed, ``helm uninstall``, the node ``down`` (failing if anything of it is left).
Usage (as root, after `make node-tools` and `.ci/containers.sh`):
    flock /tmp/realnode.lock .venv/bin/python benchmarks/cluster.py
        [--section install,throughput,rollout] [--seconds 8] [--rounds 3] [--concurrency 1,8]
        [--rate 20] [--keep]
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack, contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import PacedLoad, bank_records, percentile, run_load  # noqa: E402

from modelfactory import __version__  # noqa: E402
from modelfactory.local.ports import free_port  # noqa: E402
from modelfactory.timestamps import epoch_seconds  # noqa: E402

SECTIONS = ("install", "throughput", "rollout")
CHART = REPO / "charts" / "modelfactory"
VALUES = REPO / "tests" / "node" / "values-node.yaml"
RELEASE = "mf"
FULLNAME = f"{RELEASE}-modelfactory"
MODEL = "bank-marketing"
SERVING_NAME = f"{FULLNAME}-serving-{MODEL}"
SERVING_IMAGE = f"modelfactory-serving:{__version__}"
COMPONENTS_IMAGE = f"modelfactory-components:{__version__}"
INSTANCE = f"app.kubernetes.io/instance={RELEASE}"
SERVING = f"{INSTANCE},app.kubernetes.io/component=serving"
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}
ANALYSIS_INTERVAL = 5.0  # tests/node/values-node.yaml: serving.analysis.interval
CONTAINER_LABEL = "io.modelfactory.benchmark"
NOT_COVERED = {
    "install": "a pulled image (every image is imported into containerd first, timed apart), "
    "more than one node, an existing release upgraded",
    "throughput": "two pods behind the Service (one pod against one container keeps the "
    "comparison to the path), v2 REST and gRPC, a client on another machine, a CPU limit",
    "rollout": "production's 1m interval and 10 s tick (decision time scales with both), "
    "slow or erroring challengers (benchmarks/rollout.py times those locally), several nodes",
}


# --- the machine ---------------------------------------------------------------------------------
def _cpu(pid: int) -> float:
    try:
        t = psutil.Process(pid).cpu_times()
        return t.user + t.system
    except psutil.Error:
        return 0.0


def _machine_cpu() -> float:
    t = psutil.cpu_times()
    return sum(getattr(t, k, 0.0) for k in ("user", "system", "nice", "irq", "softirq", "steal"))


def ours(state_dir: Path) -> set[int]:
    """This process and its children, the control plane's and node's processes (their command
    lines name the state dir), every container of the node (its cgroup parent) and the
    benchmark's Docker container."""
    found = {os.getpid(), *(p.pid for p in psutil.Process().children(recursive=True))}
    for process in psutil.process_iter(["pid", "cmdline"]):
        try:
            if str(state_dir) in " ".join(process.info["cmdline"] or ()):
                found.add(process.info["pid"])
                continue
            cgroups = Path(f"/proc/{process.info['pid']}/cgroup").read_text()
        except (OSError, psutil.Error):
            continue
        if "modelfactory-node" in cgroups or BENCH_CONTAINERS & set(cgroups.split("/")):
            found.add(process.info["pid"])
    return found


BENCH_CONTAINERS: set[str] = set()  # ids of the Docker containers this benchmark started


@contextmanager
def machine_share(label: str, state_dir: Path):
    """Prints the wall time, the cores this benchmark, the node and the container used, and the
    cores other processes used meanwhile (the machine may be shared)."""
    before = {pid: _cpu(pid) for pid in ours(state_dir)}
    wall, machine = time.perf_counter(), _machine_cpu()
    try:
        yield
    finally:
        wall = time.perf_counter() - wall
        after = {pid: _cpu(pid) for pid in ours(state_dir) | set(before)}
        own = sum(max(0.0, after[pid] - before.get(pid, 0.0)) for pid in after)
        others = max(0.0, _machine_cpu() - machine - own)
        print(
            f"  [{label}: {wall:.0f} s; this benchmark, the node and the container used "
            f"{own / wall:.2f} cores, other processes {others / wall:.2f} cores; load average "
            f"{os.getloadavg()[0]:.2f}]",
            flush=True,
        )


# --- the release ---------------------------------------------------------------------------------
class Bench:
    """The node, the release on it, and what the sections share."""

    def __init__(self, node, work: Path, args):
        self.node, self.work, self.args = node, work, args
        self.namespace = ""
        self.mlflow_url = ""
        self.serving_url = ""
        self.admin: tuple[str, str] = ("", "")
        self.install: dict[str, float] = {}

    @property
    def cluster(self):
        return self.node.cluster

    def helm(self, *args: str, timeout: float = 900, check: bool = True):
        return self.cluster.helm(*args, timeout=timeout, check=check)

    def get(self, *args: str) -> dict:
        return self.cluster.get(*args)

    def serving_pods(self) -> list[dict]:
        return self.get("pods", "-n", self.namespace, "-l", SERVING)["items"]

    def wait_serving(self, replicas: int, timeout: float = 600) -> None:
        """Until the serving Deployment has ``replicas`` pods of its template, all Ready, and no
        other pod (tests/node/test_chart.py's wait)."""
        deadline = time.monotonic() + timeout
        while True:
            deployment = self.get("deployment", SERVING_NAME, "-n", self.namespace)
            status = deployment.get("status", {})
            if (
                status.get("observedGeneration", 0) >= deployment["metadata"]["generation"]
                and status.get("updatedReplicas") == replicas
                and status.get("readyReplicas") == replicas
                and len(self.serving_pods()) == replicas
            ):
                return
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"serving not rolled out in {timeout:.0f} s: {status}\n"
                    + self.node.describe(self.namespace, SERVING)
                )
            time.sleep(0.5)

    def mdep_status(self) -> dict:
        return self.get("mdep", SERVING_NAME, "-n", self.namespace).get("status", {})


def first_answer(url: str, timeout: float = 600) -> float:
    """Polls POST /predict every 0.25 s until a 200; the time.time() of that answer."""
    body = {"records": bank_records(1, seed=7)}
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=5, trust_env=False) as client:
        while time.monotonic() < deadline:
            try:
                if client.post(f"{url}/predict", json=body).status_code == 200:
                    return time.time()
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
    raise SystemExit(f"{url}/predict did not answer 200 in {timeout:.0f} s")


def quietly(bench: Bench, name: str):
    """Training's and MLflow's chatter into a log of the work dir, not the table."""
    log = open(bench.work / f"{name}.log", "a")  # noqa: SIM115 (closed by the caller's stack)
    stack = ExitStack()
    stack.enter_context(log)
    stack.enter_context(redirect_stdout(log))
    stack.enter_context(redirect_stderr(log))
    return stack


def install_section(bench: Bench, cleanups: ExitStack) -> None:
    """The release installed, the champion registered, the first answer through the Service."""
    from modelfactory.registry import CHAMPION, Registry
    from tests.support.real_node import NODE_BUILD
    from tests.support.serving import train_version

    node = bench.node
    started = time.monotonic()
    node.import_images(COMPONENTS_IMAGE, SERVING_IMAGE)
    images = time.monotonic() - started
    out = subprocess.run(
        ["bash", str(NODE_BUILD), "--out-dir"], capture_output=True, text=True, check=True
    ).stdout.strip()
    started = time.monotonic()
    node.node("import", str(Path(out) / "images" / "postgres.tar"))
    postgres = time.monotonic() - started
    bench.namespace = bench.cluster.create_namespace("bench", labels=RESTRICTED)
    cleanups.callback(uninstall, bench)
    print(
        f"  before the clock: up --real-node {node.up_seconds:.1f} s; {COMPONENTS_IMAGE} and "
        f"{SERVING_IMAGE} imported (docker save, ctr import) {images:.1f} s; PostgreSQL's image "
        f"{postgres:.1f} s",
        flush=True,
    )

    t0 = time.time()
    installed = bench.helm(
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        bench.namespace,
        "-f",
        str(VALUES),
        "--wait",
        "--timeout",
        "10m",
        check=False,
    )
    t_wait = time.time()
    if installed.returncode != 0:
        raise SystemExit(
            f"helm install failed after {t_wait - t0:.0f} s: {installed.stderr[-2000:]}\n"
            + node.describe(bench.namespace, INSTANCE)
        )
    secret = bench.get("secret", f"{FULLNAME}-mlflow-accounts", "-n", bench.namespace)
    bench.admin = ("admin", base64.b64decode(secret["data"]["admin-password"]).decode())
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = bench.admin
    bench.mlflow_url = node.node_port_url(f"{FULLNAME}-mlflow", bench.namespace)
    bench.serving_url = node.node_port_url(SERVING_NAME, bench.namespace, "http")
    with quietly(bench, "train"):
        version = train_version(bench.mlflow_url, bench.work, seed=1)
        Registry(bench.mlflow_url).set_alias(MODEL, CHAMPION, version)
    t_registered = time.time()
    t_answer = first_answer(bench.serving_url)
    bench.wait_serving(replicas=2)
    t_all = time.time()
    bench.install = {"alias->answer": t_answer - t_registered}
    rows = [
        ("helm install --wait done (PostgreSQL, MLflow, operator Ready)", t_wait),
        (f"champion v{version} trained on the host, registered, alias set", t_registered),
        ("first 200 from /predict through the serving Service (NodePort)", t_answer),
        ("both serving pods Ready", t_all),
    ]
    print(f"  {'from helm install start':<66} {'at':>8} {'step':>8}")
    previous = t0
    for label, at in rows:
        print(f"  {label:<66} {at - t0:7.1f}s {at - previous:+7.1f}s")
        previous = at
    pods = bench.get("pods", "-n", bench.namespace, "-l", INSTANCE)["items"]
    print(
        f"  pods of the release: {len(pods)}; MLflow {bench.mlflow_url}, serving "
        f"{bench.serving_url}"
    )
    print(f"  not covered: {NOT_COVERED['install']}", flush=True)


def uninstall(bench: Bench) -> None:
    started = time.monotonic()
    done = bench.helm(
        "uninstall", RELEASE, "-n", bench.namespace, "--wait", "--timeout", "3m", check=False
    )
    what = "done" if done.returncode == 0 else f"failed: {done.stderr.strip()[-300:]}"
    print(f"helm uninstall --wait {what} in {time.monotonic() - started:.1f} s", flush=True)


# --- rollout -------------------------------------------------------------------------------------
def outcome_of(bench: Bench, version: str, timeout: float = 300) -> dict:
    """The ModelDeployment's history entry of ``version`` once its rollout ended, and when this
    process first saw it (polled every 0.5 s)."""
    deadline = time.monotonic() + timeout
    while True:
        status = bench.mdep_status()
        ended = [h for h in status.get("history") or [] if h["version"] == version]
        if ended:
            return {**ended[0], "seen": time.time(), "status": status}
        if time.monotonic() > deadline:
            raise SystemExit(f"the rollout of v{version} did not end in {timeout:.0f} s: {status}")
        time.sleep(0.5)


def intervals_closed(entry: dict) -> int:
    """Analysis intervals the rollout judged: its metrics' tallies (each metric is judged once
    per interval, so the largest tally is the count)."""
    tallies = [
        m.get("successful", 0) + m.get("failed", 0) + m.get("inconclusive", 0)
        for m in (entry.get("metrics") or {}).values()
    ]
    return max(tallies, default=0)


def roll(bench: Bench, label: str, register) -> dict:
    """Steady traffic, ``register()`` (returns the challenger and when its alias was set), the
    rollout's end; a few seconds of traffic after it."""
    with PacedLoad(bench.serving_url, bench.args.rate, bank_records()) as load:
        time.sleep(3)  # the clients on their schedule before anything moves
        version, alias_set = register()
        entry = outcome_of(bench, version)
        time.sleep(4)  # serving polls the registry: the clients see the challenger leave
    challenger_answers = load.of(version)
    finished = epoch_seconds(entry["finishedAt"])
    started = epoch_seconds(entry["startedAt"]) if entry.get("startedAt") else None
    print(f"  v{version} {label}: {entry['outcome']} - {entry.get('reason', '')[:300]}", flush=True)
    return {
        "label": label,
        "version": version,
        "outcome": entry["outcome"],
        "alias_set": alias_set,
        "operator_started": started,
        "finished": finished,
        "seen": entry["seen"],
        "intervals": intervals_closed(entry),
        "first_answer": min(challenger_answers, default=None),
        "last_answer": max(challenger_answers, default=None),
        "challenger_answers": len(challenger_answers),
        "load": load,
    }


def rollout_section(bench: Bench) -> None:
    from modelfactory.registry import CHALLENGER, CHAMPION, Registry
    from tests.support.serving import train_version

    args = bench.args
    registry = Registry(bench.mlflow_url)
    print(
        f"  steady traffic: {args.rate:g} req/s offered through the Service (2 records each, 4 "
        f"keep-alive connections); rollout 50% -> analysis -> 100% -> analysis, "
        f"{ANALYSIS_INTERVAL:g} s intervals of at least 30 challenger requests, operator tick 2 s",
        flush=True,
    )

    def good() -> tuple[str, float]:
        with quietly(bench, "train"):
            version = train_version(bench.mlflow_url, bench.work, seed=2, promotion="rollout")
        at = time.time()
        held = registry.version_by_alias(MODEL, CHALLENGER)
        if held is None or str(held.version) != str(version):  # the gate kept it back
            registry.set_alias(MODEL, CHALLENGER, version)
            at = time.time()
        return str(version), at

    def bad() -> tuple[str, float]:
        registry.set_alias(MODEL, CHALLENGER, bad_version)  # as a person forcing it out would
        return str(bad_version), time.time()

    results = [roll(bench, "good: another training, promoted (alternative)", good)]
    with quietly(bench, "train"):
        bad_version = train_version(
            bench.mlflow_url, bench.work, seed=3, flip_labels=True, promotion="rollout"
        )
    if registry.version_by_alias(MODEL, CHALLENGER) is not None:
        registry.delete_alias(MODEL, CHALLENGER)  # the gate refused it; set under traffic below

    results.append(roll(bench, "trained on flipped labels, rolled back", bad))
    champion = registry.version_by_alias(MODEL, CHAMPION)
    print(
        f"  {'challenger':<48} {'outcome':<12} {'alias -> decision':>24} {'operator':>9} "
        f"{'1st answer':>10} {'after':>7} {'requests':>8} {'failed':>6} {'p50/p99 ms':>13}"
    )
    for r in results:
        load = r["load"]
        took = r["finished"] - r["alias_set"]
        operator = (
            f"{r['finished'] - r['operator_started']:.1f} s" if r["operator_started"] else "-"
        )
        first = f"+{r['first_answer'] - r['alias_set']:.1f} s" if r["first_answer"] else "none"
        after = (  # a promoted challenger is the champion afterwards: every answer is its
            f"{r['last_answer'] - r['finished']:+.1f} s"
            if r["last_answer"] and r["outcome"] != "promoted"
            else "-"
        )
        latencies = load.latencies_ms
        print(
            f"  {r['label']:<48} {r['outcome']:<12} "
            f"{took:6.1f} s = {took / ANALYSIS_INTERVAL:4.1f} intervals {operator:>9} {first:>10} "
            f"{after:>7} {len(load.answers):>8} {len(load.failures):>6} "
            f"{percentile(latencies, 50):5.1f}/{percentile(latencies, 99):6.1f}"
        )
    for r in results:
        load = r["load"]
        print(
            f"    v{r['version']}: {r['intervals']} analysis intervals closed; "
            f"{r['challenger_answers']} answers from the challenger; "
            f"{len(load.answers) / load.seconds:.1f} req/s achieved"
            f"{f' ({load.behind} slots skipped)' if load.behind else ''}; decision seen by this "
            f"process {r['seen'] - r['finished']:.1f} s after finishedAt"
            + (f"; first failures: {load.failures[:3]}" if load.failures else "")
        )
    print(
        "    (alias -> decision: the challenger alias set to the history's finishedAt; operator: "
        "its startedAt -> finishedAt; 1st answer: the clients' first answer from the challenger "
        "after the alias; after: its last answer after the rollback's decision)"
    )
    good_r, bad_r = results
    if good_r["outcome"] == "promoted":
        ratio = (bad_r["finished"] - bad_r["alias_set"]) / (
            good_r["finished"] - good_r["alias_set"]
        )
        print(f"  rollback in x{ratio:.2f} the time of the good challenger's promotion")
    failed = sum(len(r["load"].failures) for r in results)
    total = sum(len(r["load"].answers) for r in results)
    print(
        f"  client-visible failures over both rollouts: {failed} of {total} (expected 0); "
        f"champion now v{champion.version if champion else '?'}"
    )
    print(f"  not covered: {NOT_COVERED['rollout']}", flush=True)


# --- throughput ----------------------------------------------------------------------------------
def _host_dir(path: Path, uid: int, gid: int, mode: int) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, uid, gid)
    path.chmod(mode)
    return path


def docker_run_args(bench: Bench, pod: dict, name: str, port: int, metrics_port: int) -> list[str]:
    """``docker run`` arguments that run ``pod``'s serving container as the kubelet does, on
    the host's network: the same image, command, environment, user, read-only root, no
    capabilities, memory limit; emptyDirs as host directories (on disk, as the kubelet's), each
    Secret volume's files; MLflow through its NodePort, PostgreSQL at its pod's address."""
    spec = pod["spec"]
    container = spec["containers"][0]
    security = {**spec.get("securityContext", {}), **container.get("securityContext", {})}
    uid, gid = security.get("runAsUser", 10001), security.get("runAsGroup", 10001)
    fs_group = spec.get("securityContext", {}).get("fsGroup", gid)
    postgres = bench.get(
        "pods", "-n", bench.namespace, "-l", f"{INSTANCE},app.kubernetes.io/component=postgresql"
    )
    postgres_ip = postgres["items"][0]["status"]["podIP"]
    env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    env.update(
        MLFLOW_TRACKING_URI=bench.mlflow_url,
        MODELFACTORY_HTTP_HOST="127.0.0.1",
        MODELFACTORY_HTTP_PORT=str(port),
        MODELFACTORY_GRPC_PORT=str(free_port()),
        MODELFACTORY_METRICS_PORT=str(metrics_port),
    )
    if "DB_URL" in env:  # ...@<service>:5432/predictions -> ...@<pod address>:5432/predictions
        head, _, tail = env["DB_URL"].rpartition("@")
        env["DB_URL"] = f"{head}@{postgres_ip}:{tail.split(':', 1)[1]}"
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    root = bench.work / name
    args = [
        "run",
        "--detach",
        "--name",
        name,
        "--label",
        f"{CONTAINER_LABEL}=cluster",
        "--network",
        "host",
        "--user",
        f"{uid}:{gid}",
        "--group-add",
        str(fs_group),
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
    ]
    memory = (container.get("resources", {}).get("limits") or {}).get("memory")
    if memory:
        args += ["--memory", memory.replace("Mi", "m").replace("Gi", "g")]
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        host = root / mount["name"]
        if "emptyDir" in volume:
            _host_dir(host, uid, fs_group, 0o2775)
        elif "secret" in volume:
            _host_dir(host, 0, 0, 0o755)
            secret = bench.get("secret", volume["secret"]["secretName"], "-n", bench.namespace)
            items = volume["secret"].get("items") or [
                {"key": k, "path": k} for k in secret.get("data", {})
            ]
            for item in items:
                target = host / item["path"]
                target.write_bytes(base64.b64decode(secret["data"][item["key"]]))
                target.chmod(0o444)
        else:
            raise SystemExit(
                f"the serving pod's volume {mount['name']} is neither an emptyDir nor a Secret"
            )
        args += ["-v", f"{host}:{mount['mountPath']}{':ro' if mount.get('readOnly') else ''}"]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    command = container.get("command") or []
    if command:
        args += ["--entrypoint", command[0]]
    return [*args, container["image"], *command[1:], *container.get("args", [])]


def start_container(bench: Bench, pod: dict, cleanups: ExitStack) -> tuple[str, str, float]:
    """The serving container started; its URL, its /metrics URL and the seconds from
    `docker run` to its first answered /predict."""
    name = f"mf-bench-cluster-{uuid.uuid4().hex[:8]}"
    port, metrics_port = free_port(), free_port()
    args = docker_run_args(bench, pod, name, port, metrics_port)
    cleanups.callback(
        subprocess.run, ["docker", "rm", "--force", name], capture_output=True, timeout=120
    )
    started = time.time()
    run = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    if run.returncode != 0:
        raise SystemExit(f"docker run failed: {run.stderr[-2000:]}")
    BENCH_CONTAINERS.add(run.stdout.strip())
    url = f"http://127.0.0.1:{port}"
    try:
        answered = first_answer(url, timeout=300)
    except SystemExit as exc:
        logs = subprocess.run(
            ["docker", "logs", "--tail", "40", name], capture_output=True, text=True
        )
        raise SystemExit(
            f"the container did not answer: {logs.stdout[-2000:]}{logs.stderr[-2000:]}"
        ) from exc
    return url, f"http://127.0.0.1:{metrics_port}/metrics", answered - started


def cpu_shares(directory: str) -> str:
    """The cgroup v1 cpu.shares of the cgroup named ``directory`` (a pod's or a container's)."""
    found = sorted(Path("/sys/fs/cgroup/cpu").glob(f"**/{directory}/cpu.shares"))
    return found[0].read_text().strip() if found else "?"


def metrics_text_of_pod(bench: Bench, pod: str) -> str:
    script = "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:8002/metrics').read().decode())"
    return bench.node.exec(bench.namespace, pod, "python3", "-c", script, check=False).stdout


def logged(text: str) -> dict[str, float]:
    """The prediction log's written and dropped rows, from a /metrics text."""
    found = {"written": 0.0, "dropped": 0.0}
    for line in text.splitlines():
        for key in found:
            if line.startswith(f"modelfactory_prediction_log_{key}_total"):
                found[key] += float(line.rsplit(" ", 1)[1])
    return found


def interleaved(rounds: int, plan: dict) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {name: [] for name in plan}
    for round_ in range(rounds):
        for name in list(plan)[:: -1 if round_ % 2 else 1]:
            runs[name].append(plan[name]())
    return runs


def throughput_section(bench: Bench, cleanups: ExitStack) -> None:
    args = bench.args
    started = time.monotonic()
    bench.cluster.kubectl(
        "patch",
        "mdep",
        SERVING_NAME,
        "-n",
        bench.namespace,
        "--type",
        "merge",
        "-p",
        json.dumps({"spec": {"replicas": 1}}),
    )
    bench.wait_serving(replicas=1)
    pod = bench.serving_pods()[0]
    workers = next(
        (
            e["value"]
            for e in pod["spec"]["containers"][0]["env"]
            if e["name"] == "MODELFACTORY_WORKERS"
        ),
        "?",
    )
    print(
        f"  serving scaled to 1 pod ({workers} worker) in {time.monotonic() - started:.1f} s; "
        f"the container from pod {pod['metadata']['name']}'s spec, {workers} worker",
        flush=True,
    )
    docker_url, docker_metrics, docker_first = start_container(bench, pod, cleanups)
    print(
        f"  docker run -> first 200 from /predict: {docker_first:.1f} s (process start and the "
        f"champion loaded from MLflow); in the cluster, alias set -> first answer through the "
        f"Service took {bench.install.get('alias->answer', float('nan')):.1f} s (pods already "
        "running, polling for the alias)",
        flush=True,
    )
    pod_cgroup = f"pod{pod['metadata']['uid']}"
    print(
        f"  cpu.shares: pod {cpu_shares(pod_cgroup)}, container "
        f"{cpu_shares(next(iter(BENCH_CONTAINERS)))}; no CPU limit on either"
    )
    body = json.dumps({"records": bank_records(1, seed=123)}).encode()
    targets = {
        "Service (NodePort, kube-proxy) -> 1 pod": f"{bench.serving_url}/predict",
        "docker run, host network": f"{docker_url}/predict",
    }
    versions = {
        name: httpx.post(
            url, content=body, headers={"content-type": "application/json"}, timeout=10
        )
        .json()
        .get("model_version")
        for name, url in targets.items()
    }
    print(
        f"  HTTP JSON /predict, one record; versions answering: {versions}; {args.seconds:g} s "
        f"per run after 1 s warm-up, {args.rounds} interleaved rounds, medians",
        flush=True,
    )
    service_name, docker_name = targets
    print(
        f"  {'':<44} {'c':>2} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} "
        f"{'req/s, rounds':>24}"
    )
    for c in args.concurrency:
        runs = interleaved(
            args.rounds,
            {
                name: (lambda url=url, c=c: run_load(url, url, body, c, args.seconds).figures())
                for name, url in targets.items()
            },
        )
        for name, figures in runs.items():
            med = {k: statistics.median(f[k] for f in figures) for k in ("rps", "p50", "p99")}
            errors = sum(f["errors"] for f in figures)
            each = ", ".join(f"{f['rps']:.0f}" for f in figures)
            print(
                f"  {name:<44} {c:>2} {med['rps']:8.1f} {med['p50']:8.2f} {med['p99']:8.2f} "
                f"{errors:>6} {each:>24}"
            )
        pairs = [
            s["rps"] / d["rps"] for s, d in zip(runs[service_name], runs[docker_name], strict=True)
        ]
        p99 = [
            s["p99"] / d["p99"] for s, d in zip(runs[service_name], runs[docker_name], strict=True)
        ]
        p50 = [
            s["p50"] - d["p50"] for s, d in zip(runs[service_name], runs[docker_name], strict=True)
        ]
        print(
            f"  c{c}: Service / docker run throughput x{statistics.median(pairs):.2f} (rounds "
            f"{min(pairs):.2f}-{max(pairs):.2f}), p99 x{statistics.median(p99):.2f}, p50 "
            f"{statistics.median(p50):+.2f} ms",
            flush=True,
        )
    pod_log = logged(metrics_text_of_pod(bench, pod["metadata"]["name"]))
    container_log = logged(httpx.get(docker_metrics, timeout=10).text)
    print(
        f"  prediction log (rows written / dropped, since each process started): pod "
        f"{pod_log['written']:.0f} / {pod_log['dropped']:.0f}, container "
        f"{container_log['written']:.0f} / {container_log['dropped']:.0f}"
    )
    print(f"  not covered: {NOT_COVERED['throughput']}", flush=True)


# --- main ----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--section",
        default=",".join(SECTIONS),
        help="comma-separated: install, throughput, rollout (install always runs)",
    )
    parser.add_argument("--seconds", type=float, default=8, help="throughput: seconds per run")
    parser.add_argument("--rounds", type=int, default=3, help="throughput: interleaved rounds")
    parser.add_argument(
        "--concurrency",
        type=lambda text: [int(c) for c in text.split(",")],
        default=[1, 8],
        help="throughput: connections, comma-separated",
    )
    parser.add_argument("--rate", type=float, default=20, help="rollout: requests per second")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.section.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; use {', '.join(SECTIONS)}")

    from tests.support.real_node import node_parts_missing, started_real_node, why_not_here

    reason = why_not_here()
    if reason:
        sys.exit(f"no real node here: {reason}")
    missing = node_parts_missing()
    if missing:
        sys.exit(f"the node's parts are not built ({', '.join(missing)}): `make node-tools`")
    # A short path: containerd's socket lives in it (unix sockets allow 108 bytes).
    work = Path(tempfile.mkdtemp(prefix="mfbc-", dir="/tmp"))
    os.environ["MODELFACTORY_HOME"] = str(work / "home")  # nothing under the user's home
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanups

    import mlflow  # noqa: F401  (its loggers are configured on import: quiet them after)

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    print(
        f"cluster benchmark: sections {', '.join(sections)}; {os.cpu_count()} cores, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min); work dir {work}",
        flush=True,
    )
    began = time.monotonic()
    try:
        with ExitStack() as cleanups:
            if not args.keep:
                cleanups.callback(shutil.rmtree, work, True)
            node = cleanups.enter_context(started_real_node(work / "n"))
            print(f"real node up (Kubernetes {node.cluster.server_version})", flush=True)
            bench = Bench(node, work, args)
            print("\ninstall to first answer:", flush=True)
            with machine_share("install", work):
                install_section(bench, cleanups)
            if "rollout" in sections:
                print("\nrollout with real pods, decided by the operator in its pod:", flush=True)
                with machine_share("rollout", work):
                    rollout_section(bench)
            if "throughput" in sections:
                print("\nthroughput through the Service against `docker run` of the same image:")
                with machine_share("throughput", work):
                    throughput_section(bench, cleanups)
            print(f"\nmeasured in {time.monotonic() - began:.0f} s; cleaning up", flush=True)
    except KeyboardInterrupt:
        # The stack above has run: the container removed, the release uninstalled, the node down.
        sys.exit(f"interrupted after {time.monotonic() - began:.0f} s; cleaned up")
    print(f"cleaned up (container, release, node) in all {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    main()
