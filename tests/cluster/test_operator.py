"""The rollout operator on a real API server: the chart's CRD and Role, the operator running as the
chart's ServiceAccount, a real MLflow registry and a real serving process whose /metrics the
operator finds through an EndpointSlice, as it finds a serving pod's.

The tests run in file order on one release (a namespace enforcing Pod Security "restricted").
On the local control plane no container runs: each test's docstring ends with what that leaves
out. The serving process of the rollout test runs on this machine; its Deployment is scaled to
zero and an EndpointSlice names this machine's address (kwok's pods have no /metrics).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from modelfactory.local.ports import free_port
from modelfactory.local.serving import ServingProcess
from modelfactory.registry import CHALLENGER, CHAMPION, Registry
from modelfactory.rollout.state import clear_rollout, read_rollout
from tests.support.serving import Load, train_version

from .helmrelease import RESTRICTED, Release, eventually
from .operator_process import running_operator, service_account_kubeconfig

pytestmark = pytest.mark.cluster
MODEL = "bank-marketing-operator"
ACCOUNT = "mf-modelfactory-operator"


def resource(kind: str, name: str, model: str = MODEL, **spec) -> dict:
    return {
        "apiVersion": "modelfactory.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": {"model": model, **spec},
    }


def mdep(name: str, model: str = MODEL, **spec) -> dict:
    return resource("ModelDeployment", name, model, **spec)


@pytest.fixture(scope="module")
def platform(cluster, tmp_path_factory):
    """The chart (no models of its own) in a restricted namespace, and the operator's templates."""
    namespace = cluster.create_namespace("mf-operator", RESTRICTED)
    release = Release(cluster, "mf", namespace)
    values = tmp_path_factory.mktemp("operator-values") / "values.yaml"
    values.write_text(yaml.safe_dump({"serving": {"models": []}}))
    release.install([values])
    templates = tmp_path_factory.mktemp("operator-templates")
    config = release.get("configmap", "mf-modelfactory-operator-serving-template")
    for file, text in config["data"].items():
        (templates / file).write_text(text)
    release.templates = templates
    yield release
    cluster.kubectl("delete", "mdep", "--all", "-n", namespace, "--wait=false", check=False)
    cluster.helm("uninstall", release.name, "--namespace", namespace, check=False)
    cluster.delete_namespace(namespace)


@pytest.fixture(scope="module")
def versions(mlflow_server, tmp_path_factory):
    work = tmp_path_factory.mktemp("operator-versions")
    champion = train_version(mlflow_server, work, seed=1, model=MODEL)
    challenger = train_version(mlflow_server, work, seed=2, model=MODEL)
    registry = Registry(mlflow_server)
    registry.set_alias(MODEL, CHAMPION, champion)
    registry.delete_alias(MODEL, CHALLENGER)
    return champion, challenger


def apply(release: Release, obj: dict, check: bool = True):
    return release.cluster.kubectl(
        "apply", "-n", release.namespace, "-f", "-", input=json.dumps(obj), check=check
    )


def test_the_api_server_documents_defaults_and_refuses_nonsense(platform):
    """The CRD from the chart: `kubectl explain` documents the fields, the API server fills the
    defaults and refuses a spec outside the schema, naming the field.
    Not covered on the local control plane: nothing; this is all the API server's."""
    explained = platform.cluster.kubectl("explain", "modeldeployment.spec.rollout.steps").stdout
    assert "setWeight" in explained and "pause" in explained
    refused = apply(
        platform, mdep("nonsense", rollout={"steps": [{"setWeight": 150}]}), check=False
    )
    assert refused.returncode != 0 and "spec.rollout.steps[0].setWeight" in refused.stderr
    refused = apply(platform, mdep("nonsense", analysis={"minRequests": 0}), check=False)
    assert refused.returncode != 0 and "spec.analysis.minRequests" in refused.stderr
    apply(platform, mdep("defaults"))
    spec = platform.get("mdep", "defaults")["spec"]
    assert spec["replicas"] == 1 and spec["alias"] == "champion"
    assert spec["rollout"]["trigger"] == "auto" and spec["rollout"]["budgetMs"] == 50
    assert spec["analysis"] == {**spec["analysis"], "interval": "1m", "minRequests": 200}
    platform.cluster.kubectl("delete", "mdep", "defaults", "-n", platform.namespace)


def test_a_modeldeployment_gets_its_objects_pods_status_and_columns(
    platform, mlflow_server, versions, tmp_path
):
    """The operator applies the Deployment, Service, HPA and PDB with owner references; kwok makes
    the pods Ready; status, conditions and printer columns fill in; turning autoscaling off
    deletes the HPA.
    Not covered on the local control plane: the operator's and the serving pods' containers never
    run (the operator runs on this machine, as its ServiceAccount)."""
    name = "served"
    apply(
        platform,
        mdep(
            name,
            autoscaling={"enabled": True, "minReplicas": 2, "maxReplicas": 3},
            podDisruptionBudget={"enabled": True},
        ),
    )
    with operator_for(platform, mlflow_server, tmp_path):

        def created() -> list[str]:
            problems = []
            for kind in ("deployment", "service", "hpa", "pdb"):
                found = platform.cluster.kubectl(
                    "get", kind, name, "-n", platform.namespace, "-o", "json", check=False
                )
                if found.returncode != 0:
                    problems.append(f"no {kind}")
                    continue
                owners = json.loads(found.stdout)["metadata"].get("ownerReferences", [])
                if [(o["kind"], o["name"], o.get("controller")) for o in owners] != [
                    ("ModelDeployment", name, True)
                ]:
                    problems.append(f"{kind} owners {owners}")
            return problems

        eventually(created, 60, "the owned objects")

        def ready() -> list[str]:
            status = platform.get("mdep", name).get("status", {})
            conditions = {c["type"]: c["status"] for c in status.get("conditions", [])}
            if status.get("phase") != "Healthy" or conditions.get("Available") != "True":
                deployment = platform.get("deployment", name).get("status", {})
                return [f"status {status.get('message')} {conditions}; deployment {deployment}"]
            return []

        platform.cluster.kubectl(
            "scale", "deployment", name, "-n", platform.namespace, "--replicas=2"
        )
        eventually(ready, 90, "a Healthy, Available ModelDeployment")
        status = platform.get("mdep", name)["status"]
        assert status["champion"] == versions[0] and "answers all requests" in status["message"]
        pods = platform.pods({"modelfactory.io/modeldeployment": name})
        assert pods and all(p["spec"]["securityContext"]["runAsNonRoot"] for p in pods)
        columns = platform.cluster.kubectl("get", "mdep", name, "-n", platform.namespace).stdout
        header, row = columns.splitlines()[:2]
        assert header.split() == [
            "NAME",
            "MODEL",
            "PHASE",
            "CHAMPION",
            "CHALLENGER",
            "WEIGHT",
            "STEP",
            "AGE",
        ]
        assert row.split()[:4] == [name, MODEL, "Healthy", versions[0]]
        wide = platform.cluster.kubectl("get", "mdep", name, "-n", platform.namespace, "-o", "wide")
        assert "MESSAGE" in wide.stdout

        apply(platform, mdep(name, autoscaling={"enabled": False}))
        eventually(
            lambda: (
                []
                if platform.cluster.kubectl(
                    "get", "hpa", name, "-n", platform.namespace, check=False
                ).returncode
                else ["hpa still there"]
            ),
            60,
            "the HPA removed",
        )
        # A second ModelDeployment of the same model serves it but never moves its rollout.
        apply(platform, mdep("second"))
        eventually(
            lambda: (
                []
                if "driven by"
                in platform.get("mdep", "second").get("status", {}).get("message", "")
                else ["not held"]
            ),
            60,
            "the second one held",
        )
        for gone in (name, "second"):  # finalized while the operator runs
            platform.cluster.kubectl(
                "delete", "mdep", gone, "-n", platform.namespace, "--timeout=60s", timeout=90
            )


def _this_machine_address() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.254", 9))  # no packet is sent: this only picks the interface
        return probe.getsockname()[0]


def serving_here(release: Release, name: str, mlflow_server: str, home: Path, **env: str):
    """A serving process on this machine standing in for ModelDeployment ``name``'s pods: an
    EndpointSlice of its Service names this machine's address and the process's metrics port."""
    home.mkdir()
    process = ServingProcess(
        MODEL,
        mlflow_server,
        free_port(),
        host="0.0.0.0",
        workers=1,
        log_file=home / "serve.log",
        extra_env={
            "MODELFACTORY_HOME": str(home),
            "MODELFACTORY_ROLLOUT_POLL_SECONDS": "1",
            "MODELFACTORY_GRPC_ENABLED": "false",
            **env,
        },
    )
    endpoint_slice = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{name}-this-machine",
            "labels": {
                "kubernetes.io/service-name": name,
                "endpointslice.kubernetes.io/managed-by": "modelfactory-tests",
            },
        },
        "addressType": "IPv4",
        "ports": [{"name": "metrics", "port": process.metrics_port, "protocol": "TCP"}],
        "endpoints": [{"addresses": [_this_machine_address()], "conditions": {"ready": True}}],
    }
    apply(release, endpoint_slice)
    return process


def operator_for(release: Release, mlflow_server: str, workdir: Path):
    """The operator on this machine as the chart's ServiceAccount, with the chart's templates."""
    return running_operator(
        release.cluster,
        release.namespace,
        ACCOUNT,
        mlflow_server,
        workdir,
        templates=release.templates,
    )


def wait_promoted(release: Release, name: str) -> dict:
    """`kubectl wait --for=condition=Promoted` on ModelDeployment ``name``; its status."""
    promoted = release.cluster.kubectl(
        "wait",
        "--for=condition=Promoted",
        f"mdep/{name}",
        "-n",
        release.namespace,
        "--timeout=120s",
        timeout=150,
        check=False,
    )
    status = release.get("mdep", name).get("status", {})
    assert promoted.returncode == 0, (status.get("message"), status.get("analysis"))
    return status


def phase_is(release: Release, name: str, phase: str) -> Callable[[], list[str]]:
    def check() -> list[str]:
        status = release.get("mdep", name).get("status", {})
        return [] if status.get("phase") == phase else [f"{status.get('phase')}: {status}"]

    return check


def test_a_rollout_goes_out_step_by_step_survives_a_restart_and_is_promoted(
    platform, mlflow_server, versions, tmp_path
):
    """A new challenger alias starts the rollout; the operator reads the serving process's
    /metrics through the Service's EndpointSlices, moves the weight in the registry, is
    restarted mid-rollout and resumes from the status, promotes the challenger, records the
    outcome on the version and emits events; `kubectl wait --for=condition=Promoted` returns.
    Not covered on the local control plane: the operator's and the serving pods' containers never
    run (the operator runs on this machine, as its ServiceAccount)."""
    champion, challenger = versions
    name = "rollout"
    registry = Registry(mlflow_server)
    registry.set_alias(MODEL, CHAMPION, champion)
    clear_rollout(registry, MODEL)
    spec = {
        "replicas": 0,  # the serving process below stands in for the pods
        "rollout": {
            "steps": [{"setWeight": 50}, {"analysis": {}}, {"setWeight": 100}, {"analysis": {}}]
        },
        "analysis": {
            "interval": "3s",
            "minRequests": 30,
            "metrics": [{"name": "error-rate", "max": 0.01}, {"name": "agreement", "min": 0.8}],
        },
    }
    apply(platform, mdep(name, **spec))
    process = serving_here(
        platform, name, mlflow_server, tmp_path / "serving", MODELFACTORY_PREDICTION_LOG="false"
    )
    with process, Load(f"http://127.0.0.1:{process.port}") as traffic:
        with operator_for(platform, mlflow_server, tmp_path):
            eventually(phase_is(platform, name, "Healthy"), 60, "the steady state")
            registry.set_alias(MODEL, CHALLENGER, challenger)

            def at_weight(weight: float):
                def check() -> list[str]:
                    status = platform.get("mdep", name).get("status", {})
                    if status.get("weight") != weight:
                        slices = platform.cluster.kubectl(
                            "get", "endpointslices", "-n", platform.namespace, "-o", "wide"
                        ).stdout
                        return [f"weight {status.get('weight')}: {status.get('message')}", slices]
                    return []

                return check

            eventually(at_weight(50), 60, "the first step")
            assert read_rollout(registry, MODEL).weight == 50
        # The operator is gone; the status alone holds the rollout. A new one resumes it.
        with operator_for(platform, mlflow_server, tmp_path):
            status = wait_promoted(platform, name)
            events = platform.cluster.get(
                "events",
                "-n",
                platform.namespace,
                "--field-selector",
                f"involvedObject.name={name}",
            )["items"]
            platform.cluster.kubectl(
                "delete", "mdep", name, "-n", platform.namespace, "--timeout=60s", timeout=90
            )
    assert status["phase"] == "Healthy" and status["champion"] == challenger
    assert status["history"][0]["outcome"] == "promoted"
    assert str(registry.version_by_alias(MODEL, CHAMPION).version) == challenger
    tags = registry.client.get_model_version(MODEL, challenger).tags
    assert tags["rollout.outcome"] == "promoted"
    assert tags["rollout.deployment"] == f"{platform.namespace}/{name}"
    reasons = {e["reason"] for e in events}
    assert {"RolloutStarted", "Promoted"} <= reasons, reasons
    assert traffic.failures == 0


def replay_job_args(job: dict, challenger: str) -> list[str]:
    """The replay Job's container arguments, once its pod is seen locked down: owned by the
    ModelDeployment, no API token, a read-only root, only the replays' MLflow account."""
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert job["metadata"]["ownerReferences"][0]["kind"] == "ModelDeployment"
    assert pod["automountServiceAccountToken"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "--challenger" in container["args"] and challenger in container["args"]
    accounts = [
        item["key"]
        for volume in pod["volumes"]
        if volume.get("secret", {}).get("secretName", "").endswith("-mlflow-accounts")
        for item in volume["secret"]["items"]
    ]
    assert accounts == ["replay-password"], accounts
    return container["args"]


def test_a_replay_runs_as_a_job_before_the_challenger_sees_traffic(
    platform, mlflow_server, versions, tmp_path
):
    """A rollout whose first step is a replay: the operator starts a Job from the chart's replay
    template (owned by the ModelDeployment, no API token, the replays' own MLflow account,
    admitted under "restricted"), gives the challenger no traffic while the replay runs, reads
    the result the Job records on the version, and only then sends traffic and promotes it.
    Not covered on the local control plane: the Job's pod never runs (kwok); its container's
    program runs on this machine with the Job's arguments, on the same registry and log."""
    champion, challenger = versions
    name = "replayed"
    registry = Registry(mlflow_server)
    registry.set_alias(MODEL, CHAMPION, champion)
    registry.delete_alias(MODEL, CHALLENGER)
    clear_rollout(registry, MODEL)
    spec = {
        "replicas": 0,  # the serving process below stands in for the pods
        "rollout": {
            "steps": [
                {"replay": {"lastRequests": 400, "since": "1h", "minRows": 100}},
                {"setWeight": 100},
                {"analysis": {}},
            ]
        },
        "analysis": {
            "interval": "3s",
            "minRequests": 30,
            # 400 replayed records can show an error rate under 5%, not under 1% (ADR 0015); the
            # two seeds' forests agree on about 85% of the traffic, known within about +-0.06
            "metrics": [{"name": "error-rate", "max": 0.05}, {"name": "agreement", "min": 0.6}],
        },
    }
    apply(platform, mdep(name, **spec))
    home = tmp_path / "serving"
    store = f"sqlite:///{home / 'predictions.db'}"
    process = serving_here(
        platform, name, mlflow_server, home, MODELFACTORY_PREDICTION_STORE_URL=store
    )
    with process, Load(f"http://127.0.0.1:{process.port}") as traffic:
        with operator_for(platform, mlflow_server, tmp_path):
            try:
                eventually(phase_is(platform, name, "Healthy"), 60, "the steady state")
                registry.set_alias(MODEL, CHALLENGER, challenger)

                def replay_jobs() -> list[dict]:
                    return platform.cluster.get(
                        "jobs",
                        "-n",
                        platform.namespace,
                        "-l",
                        f"modelfactory.io/modeldeployment={name}",
                    )["items"]

                eventually(lambda: [] if replay_jobs() else ["no replay Job"], 60, "the replay Job")
                (job,) = replay_jobs()
                status = platform.get("mdep", name)["status"]
                assert status["phase"] == "Progressing" and "replaying" in status["message"], status
                assert read_rollout(registry, MODEL).weight == 0  # no user has met the challenger
                args = replay_job_args(job, challenger)
                ran = subprocess.run(
                    [sys.executable, "-m", "modelfactory.operator.replay_job", *args],
                    env={
                        **os.environ,
                        "MLFLOW_TRACKING_URI": mlflow_server,
                        "MODELFACTORY_HOME": str(tmp_path / "replay"),
                        "MODELFACTORY_PREDICTION_STORE_URL": store,
                    },
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                assert ran.returncode == 0, ran.stderr[-2000:]
                status = wait_promoted(platform, name)
            finally:  # the operator finalizes it, also when the test fails, for the tests after
                platform.cluster.kubectl(
                    "delete", "mdep", name, "-n", platform.namespace, "--timeout=60s", timeout=90
                )
    replayed = json.loads(
        registry.client.get_model_version(MODEL, challenger).tags["rollout.replay"]
    )
    assert replayed["rows"] >= 100, replayed
    assert status["champion"] == challenger
    assert status["history"][0]["replay"]["verdict"] == "Passed", status["history"][0]
    assert traffic.failures == 0, traffic.errors


def test_deleting_a_modeldeployment_removes_its_objects_and_its_rollout_tags(
    platform, mlflow_server, versions, tmp_path
):
    """A manual rollout waits; the kubectl plugin (`kubectl modelfactory promote`) starts it and
    `kubectl modelfactory status` shows it. Deleted, the finalizer clears the model's rollout
    tags in the registry and the garbage collector removes the owned Deployment and Service.
    Not covered on the local control plane: the operator's and the serving pods' containers never
    run (the operator runs on this machine, as its ServiceAccount)."""
    champion, challenger = versions
    name = "doomed"
    registry = Registry(mlflow_server)
    registry.set_alias(MODEL, CHAMPION, champion)
    registry.set_alias(MODEL, CHALLENGER, challenger)
    clear_rollout(registry, MODEL)
    apply(platform, mdep(name, replicas=1, rollout={"trigger": "manual"}))
    with operator_for(platform, mlflow_server, tmp_path):
        eventually(
            lambda: (
                []
                if platform.get("mdep", name).get("status", {}).get("phase") == "Paused"
                else ["not waiting for promote"]
            ),
            60,
            "the manual rollout waiting",
        )
        # The kubectl plugin (kubectl finds kubectl-modelfactory on the PATH) asks to start it.
        plugin_env = {
            **platform.cluster.env,
            "PATH": f"{Path(sys.executable).parent}:{platform.cluster.env['PATH']}",
        }
        promoted = subprocess.run(
            [
                platform.cluster.kubectl_path,
                "modelfactory",
                "promote",
                name,
                "-n",
                platform.namespace,
            ],
            env=plugin_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert promoted.returncode == 0, promoted.stderr
        assert "modelfactory.io/action=promote" in promoted.stdout
        eventually(
            lambda: (
                []
                if platform.get("mdep", name).get("status", {}).get("phase") == "Progressing"
                else ["not started"]
            ),
            60,
            "the rollout started by promote",
        )
        shown = subprocess.run(
            [
                platform.cluster.kubectl_path,
                "modelfactory",
                "status",
                name,
                "-n",
                platform.namespace,
            ],
            env=plugin_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert shown.returncode == 0 and "Progressing" in shown.stdout, shown.stdout + shown.stderr
        platform.cluster.kubectl(
            "delete",
            "mdep",
            name,
            "-n",
            platform.namespace,
            "--wait=true",
            "--timeout=60s",
            timeout=90,
        )
    assert read_rollout(registry, MODEL).mode is None  # the finalizer cleared the tags

    def collected() -> list[str]:
        left = []
        for kind in ("deployment", "service"):
            if (
                platform.cluster.kubectl(
                    "get", kind, name, "-n", platform.namespace, check=False
                ).returncode
                == 0
            ):
                left.append(kind)
        return left

    eventually(collected, 60, "garbage collection of the owned objects")
    registry.delete_alias(MODEL, CHALLENGER)


def dmon(name: str, model: str = MODEL, **spec) -> dict:
    return resource("DriftMonitor", name, model, **spec)


def _check_command(cron: dict) -> list[str]:
    """The command a check's pod runs (its monitor's name, namespace and configuration)."""
    container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    # The chart's prefix (it joins the database password into the store's URL) runs the program.
    assert container["command"][0] == "/bin/sh"
    program = container["command"][container["command"].index("python3") :]
    assert program == ["python3", "-m", "modelfactory.operator.monitor_job"]
    return [sys.executable, *program[1:], *container["args"]]


def test_a_driftmonitor_runs_on_a_cronjob_whose_checks_may_write_only_their_status(
    platform, mlflow_server, versions, tmp_path
):
    """The operator gives a DriftMonitor its CronJob (concurrencyPolicy Forbid) and a
    ServiceAccount allowed to get and patch that monitor's status and nothing else; the
    controller manager starts Jobs on the schedule; a check run as that ServiceAccount writes
    its decision (too few logged predictions: insufficient data) into the status and printer
    columns; a monitor naming a ModelDeployment checks that one's model (its checks may get it);
    a check that cannot reach the registry says so in the Checked condition and keeps the last
    result.
    Not covered on the local control plane: the Job's container never runs (kwok); the check
    runs on this machine with the Job's environment."""
    cluster, namespace = platform.cluster, platform.namespace
    refused = apply(platform, dmon("nonsense", window={"since": "yesterday"}), check=False)
    assert refused.returncode != 0 and "spec.window.since" in refused.stderr
    name = "bank-drift"
    apply(platform, dmon(name, schedule="* * * * *", minRows=50))
    account = f"{name}-drift-monitor"
    # A monitor may name a ModelDeployment instead of a model: its check reads that one's model.
    apply(platform, mdep("drift-target"))
    by_reference = dmon("by-reference", schedule="0 0 1 1 *", minRows=50)
    by_reference["spec"] = {"modelDeployment": "drift-target", **by_reference["spec"]}
    del by_reference["spec"]["model"]
    apply(platform, by_reference)
    with operator_for(platform, mlflow_server, tmp_path):

        def cron_job_of(monitor: str = name) -> dict | None:
            found = cluster.kubectl(
                "get", "cronjob", f"{monitor}-drift", "-n", namespace, "-o", "json", check=False
            )
            return json.loads(found.stdout) if found.returncode == 0 else None

        eventually(lambda: [] if cron_job_of() else ["no CronJob"], 60, "the monitor's CronJob")
        eventually(
            lambda: [] if cron_job_of("by-reference") else ["no CronJob"],
            60,
            "the CronJob of the monitor naming a ModelDeployment",
        )
        cron = cron_job_of()
        assert cron is not None
        owners = cron["metadata"]["ownerReferences"]
        assert [(o["kind"], o["name"]) for o in owners] == [("DriftMonitor", name)]
        assert cron["spec"]["concurrencyPolicy"] == "Forbid"
        pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == account
        conditions = {c["type"]: c for c in platform.get("dmon", name)["status"]["conditions"]}
        assert conditions["Scheduled"]["status"] == "True"

        # This machine's MLflow and prediction log stand in for the release's.
        (tmp_path / "home").mkdir()  # the pod's home volume
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": mlflow_server,
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
            "MODELFACTORY_HOME": str(tmp_path / "home"),
        }
        reference_account = "by-reference-drift-monitor"
        answer = cluster.kubectl(
            "auth",
            "can-i",
            "get",
            "modeldeployments.modelfactory.io/drift-target",
            "-n",
            namespace,
            f"--as=system:serviceaccount:{namespace}:{reference_account}",
            check=False,
        )
        assert answer.stdout.strip() == "yes"
        kubeconfig_ref = service_account_kubeconfig(
            cluster, namespace, reference_account, tmp_path / "ref.kubeconfig"
        )
        ran = subprocess.run(
            _check_command(cron_job_of("by-reference")),
            env={**env, "KUBECONFIG": str(kubeconfig_ref)},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert ran.returncode == 0, ran.stderr[-3000:]
        status = platform.get("dmon", "by-reference")["status"]
        assert status["model"] == MODEL and status["lastResult"]["decision"] == "insufficient_data"
        cluster.kubectl("delete", "dmon", "by-reference", "-n", namespace)
        cluster.kubectl("delete", "mdep", "drift-target", "-n", namespace)  # the operator finalizes

    def may(verb: str, resource: str) -> bool:
        answer = cluster.kubectl(
            "auth",
            "can-i",
            verb,
            resource,
            "-n",
            namespace,
            f"--as=system:serviceaccount:{namespace}:{account}",
            check=False,
        )
        return answer.stdout.strip() == "yes"

    own = f"driftmonitors.modelfactory.io/{name}"
    assert not may("patch", own)  # its spec: no
    answer = cluster.kubectl(
        "auth",
        "can-i",
        "patch",
        own,
        "--subresource=status",
        "-n",
        namespace,
        f"--as=system:serviceaccount:{namespace}:{account}",
        check=False,
    )
    assert answer.stdout.strip() == "yes"
    assert not may("patch", "driftmonitors.modelfactory.io/another")
    assert not may("get", "secrets") and not may("list", "pods")

    def job_started() -> list[str]:
        jobs = cluster.get("jobs", "-n", namespace)["items"]
        started = [
            job
            for job in jobs
            for o in job["metadata"].get("ownerReferences", [])
            if (o["kind"], o["name"]) == ("CronJob", f"{name}-drift")
        ]
        return [] if started else [f"no Job owned by the CronJob among {len(jobs)}"]

    eventually(job_started, 130, "a Job started by the controller manager on the schedule")

    kubeconfig = service_account_kubeconfig(cluster, namespace, account, tmp_path / "dm.kubeconfig")
    check = _check_command(cron)
    env["KUBECONFIG"] = str(kubeconfig)
    ran = subprocess.run(check, env=env, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    status = platform.get("dmon", name)["status"]
    assert status["lastResult"]["decision"] == "insufficient_data"
    assert "insufficient data: 0 rows in the window" in status["lastResult"]["reason"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Checked"]["status"] == "True"
    assert conditions["Checked"]["reason"] == "InsufficientData"
    assert conditions["Scheduled"]["status"] == "True"  # the operator's condition stays
    columns = cluster.kubectl("get", "dmon", name, "-n", namespace).stdout
    assert "insufficient_data" in columns and "* * * * *" in columns

    env["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    failed = subprocess.run(check, env=env, capture_output=True, text=True, timeout=300)
    assert failed.returncode != 0
    status = platform.get("dmon", name)["status"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Checked"]["status"] == "False"
    assert conditions["Checked"]["reason"] == "CheckFailed"
    assert "127.0.0.1" in conditions["Checked"]["message"]
    assert status["lastResult"]["decision"] == "insufficient_data"  # the last result stays

    cluster.kubectl("delete", "dmon", name, "-n", namespace)
    eventually(lambda: ["still there"] if cron_job_of() else [], 60, "the CronJob collected")


def test_the_operator_uses_every_verb_its_role_grants(platform, cluster):
    """The API server's audit log of the tests above: each verb the chart's Role grants the
    operator on each resource was used at least once (a verb it never uses is a grant too many),
    and nothing was refused.
    Not covered on the local control plane: the operator's and the serving pods' containers never
    run (the operator runs on this machine, as its ServiceAccount)."""
    if not cluster.local or cluster.state_dir is None:
        pytest.skip("needs the local control plane's audit log (tools/control-plane.sh)")
    user = f"system:serviceaccount:{platform.namespace}:{ACCOUNT}"
    used: set[tuple[str, str, str]] = set()
    refused = []
    for line in (Path(cluster.state_dir) / "logs" / "audit.log").read_text().splitlines():
        event = json.loads(line)
        if (
            event.get("user", {}).get("username") != user
            or event.get("stage") != "ResponseComplete"
        ):
            continue
        ref = event.get("objectRef") or {}
        resource = ref.get("resource", "") + (
            f"/{ref['subresource']}" if ref.get("subresource") else ""
        )
        used.add((ref.get("apiGroup", ""), resource, event["verb"]))
        if event["verb"] == "patch" and event.get("responseStatus", {}).get("code") == 201:
            # A server-side apply that created the object: authorized as a create too.
            used.add((ref.get("apiGroup", ""), resource, "create"))
        if event.get("responseStatus", {}).get("code") == 403:
            refused.append(f"{event['verb']} {resource}")
    role = platform.get("role", ACCOUNT)
    # Held only to be granted: each DriftMonitor's checks get their monitor's status (and the
    # ModelDeployment it names), and RBAC
    # lets the operator give a Role no more than it holds itself.
    used.add(("modelfactory.io", "driftmonitors/status", "get"))
    used.add(("modelfactory.io", "modeldeployments", "get"))
    unused = [
        f"{verb} {group or 'core'}/{resource}"
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
        if (group, resource, verb) not in used
    ]
    assert not refused, f"the operator was refused: {refused}"
    assert not unused, f"granted but never used: {unused} (used: {sorted(used)})"
