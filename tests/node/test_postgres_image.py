"""The PostgreSQL image built from Debian's packages (tools/node/build.sh) runs as the chart
runs the official one: uid 999 on a read-only root, PGDATA in a subdirectory of a PVC, the
superuser's password from a file, the init scripts of /docker-entrypoint-initdb.d, and
password authentication for TCP clients."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.support.real_node import NODE_BUILD, RealNode

IMAGE = "modelfactory.local/postgres:15-bookworm"
INIT = """#!/bin/bash
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \\
  -v pw="$(head -n 1 /etc/db/app-password)" <<'SQL'
CREATE ROLE app LOGIN PASSWORD :'pw';
CREATE DATABASE app OWNER app;
SQL
"""


def _objects() -> list[dict]:
    mounts = {
        "data": "/var/lib/postgresql/data",
        "init": "/docker-entrypoint-initdb.d",
        "run": "/var/run/postgresql",
        "tmp": "/tmp",
        "shm": "/dev/shm",
        "db": "/etc/db",
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "init"},
            "data": {"10-app.sh": INIT},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db"},
            "stringData": {"admin-password": "admin-secret", "app-password": "app-secret"},
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "postgresql", "labels": {"app": "postgresql"}},
            "spec": {
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 999,
                    "runAsGroup": 999,
                    "fsGroup": 999,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    {
                        "name": "postgresql",
                        "image": IMAGE,
                        "imagePullPolicy": "Never",
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "env": [
                            {"name": "POSTGRES_USER", "value": "postgres"},
                            {"name": "POSTGRES_PASSWORD_FILE", "value": "/etc/db/admin-password"},
                            {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                        ],
                        "readinessProbe": {
                            "exec": {
                                "command": [
                                    "pg_isready",
                                    "--host=127.0.0.1",
                                    "--port=5432",
                                    "--username=postgres",
                                ]
                            },
                            "periodSeconds": 2,
                        },
                        "volumeMounts": [{"name": n, "mountPath": p} for n, p in mounts.items()],
                    }
                ],
                "volumes": [
                    {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                    {"name": "init", "configMap": {"name": "init", "defaultMode": 0o555}},
                    {"name": "run", "emptyDir": {}},
                    {"name": "tmp", "emptyDir": {}},
                    {"name": "shm", "emptyDir": {"medium": "Memory"}},
                    {"name": "db", "secret": {"secretName": "db"}},
                ],
            },
        },
    ]


def test_the_postgresql_image_runs_as_the_chart_runs_the_official_one(real_node: RealNode):
    out = subprocess.run(
        ["bash", str(NODE_BUILD), "--out-dir"], capture_output=True, text=True, check=True
    ).stdout.strip()
    real_node.node("import", str(Path(out) / "images" / "postgres.tar"))
    namespace = real_node.cluster.create_namespace(
        "postgres", labels={"pod-security.kubernetes.io/enforce": "restricted"}
    )
    real_node.cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": _objects()}),
    )
    real_node.wait_ready(namespace, "app=postgresql", timeout=180)

    def psql(password: str):
        return real_node.exec(
            namespace,
            "postgresql",
            "env",
            f"PGPASSWORD={password}",
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "app",
            "-d",
            "app",
            "-tAc",
            "select current_user",
            check=False,
        )

    assert psql("app-secret").stdout.strip() == "app"  # the init script made the role and db
    refused = psql("wrong")
    assert refused.returncode != 0 and "password authentication failed" in refused.stderr
    uid = real_node.exec(namespace, "postgresql", "id", "-u").stdout.strip()
    assert uid == "999"
    logs = real_node.cluster.kubectl("logs", "-n", namespace, "postgresql").stdout
    assert "running /docker-entrypoint-initdb.d/10-app.sh" in logs
