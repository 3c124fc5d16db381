"""Writes an OCI image archive from directories, without a container engine or a registry.

The node's own images (pause, CoreDNS, the local-path provisioner and its helper, PostgreSQL)
are files laid out in a directory each; this makes of each directory one uncompressed layer,
adds the image config and manifest, and writes an OCI image layout as one tar that
``ctr -n k8s.io images import`` reads (the ``io.containerd.image.name`` annotation names the
image). Layers are reproducible: entries sorted, times and owners as given, no host names.

    python3 tools/node/oci_image.py --name modelfactory.local/pause:3.10.2 \
        --out pause.tar --layer rootfs/ --entrypoint '["/pause"]' --user 65535:65535
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tarfile
import tempfile
from pathlib import Path

EPOCH = 0  # every file's mtime in a layer: the same inputs give the same digests


def _layer(directory: Path, out) -> None:
    """One tar of the directory's contents, entries sorted, owners and modes kept."""
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        paths = sorted(directory.rglob("*"), key=lambda p: p.relative_to(directory).as_posix())
        for path in paths:
            info = tar.gettarinfo(str(path), arcname=path.relative_to(directory).as_posix())
            info.mtime = EPOCH
            info.uname = info.gname = ""
            if info.isfile():
                with path.open("rb") as data:
                    tar.addfile(info, data)
            else:
                tar.addfile(info)


def _blob(blobs: Path, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return f"sha256:{digest}", len(data)


def build(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(dir=Path(args.out).parent) as work:
        root = Path(work)
        blobs = root / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        layers, diff_ids = [], []
        for directory in args.layer:
            staged = root / "layer.tar"
            with staged.open("wb") as out:
                _layer(Path(directory), out)
            sha = hashlib.sha256()
            with staged.open("rb") as data:
                for chunk in iter(lambda: data.read(1 << 20), b""):
                    sha.update(chunk)
            digest = sha.hexdigest()
            size = staged.stat().st_size
            staged.rename(blobs / digest)
            layers.append(
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": f"sha256:{digest}",
                    "size": size,
                }
            )
            diff_ids.append(f"sha256:{digest}")  # uncompressed: the layer is its own diff
        config: dict = {"Env": args.env or ["PATH=/usr/local/bin:/usr/bin:/bin"]}
        if args.entrypoint:
            config["Entrypoint"] = args.entrypoint
        if args.cmd:
            config["Cmd"] = args.cmd
        if args.user:
            config["User"] = args.user
        if args.workdir:
            config["WorkingDir"] = args.workdir
        if args.port:
            config["ExposedPorts"] = {p: {} for p in args.port}
        if args.stop_signal:
            config["StopSignal"] = args.stop_signal
        image_config = {
            "architecture": "amd64",
            "os": "linux",
            "created": "1970-01-01T00:00:00Z",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": "tools/node/oci_image.py"} for _ in diff_ids],
        }
        config_digest, config_size = _blob(blobs, json.dumps(image_config).encode())
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config_size,
            },
            "layers": layers,
        }
        manifest_digest, manifest_size = _blob(blobs, json.dumps(manifest).encode())
        index = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": manifest_digest,
                    "size": manifest_size,
                    "platform": {"architecture": "amd64", "os": "linux"},
                    "annotations": {
                        "io.containerd.image.name": args.name,
                        "org.opencontainers.image.ref.name": args.name.rsplit(":", 1)[-1],
                    },
                }
            ],
        }
        (root / "index.json").write_text(json.dumps(index))
        (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        partial = Path(args.out + ".partial")
        with tarfile.open(partial, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in ("oci-layout", "index.json", "blobs"):
                tar.add(root / name, arcname=name, filter=_normalise)
        os.replace(partial, args.out)
    print(f"{args.name}: {args.out} ({Path(args.out).stat().st_size / 1e6:.1f} MB)")


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime, info.uid, info.gid, info.uname, info.gname = EPOCH, 0, 0, "", ""
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="image reference, e.g. host/name:tag")
    parser.add_argument("--out", required=True, help="the archive to write")
    parser.add_argument("--layer", action="append", required=True, help="a directory: one layer")
    parser.add_argument("--entrypoint", type=json.loads, help='JSON list, e.g. ["/pause"]')
    parser.add_argument("--cmd", type=json.loads, help="JSON list")
    parser.add_argument("--user", help="uid[:gid]")
    parser.add_argument("--env", action="append", help="NAME=value (repeatable)")
    parser.add_argument("--workdir")
    parser.add_argument("--port", action="append", help="e.g. 53/udp (repeatable)")
    parser.add_argument("--stop-signal")
    build(parser.parse_args())


if __name__ == "__main__":
    main()
