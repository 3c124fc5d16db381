"""``python -m modelfactory.operator.cleanup``: delete a release's ModelDeployments and wait until
they are gone, while the operator still runs to finalize them (clear their rollout tags).

The chart runs it as a pre-delete hook: ``helm uninstall`` would otherwise delete the operator's
ServiceAccount and Role in the same pass, leaving each ModelDeployment's finalizer to an operator
that can no longer authenticate, and the ModelDeployments stuck in Terminating.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from kubernetes import client

from modelfactory.operator.crds import GROUP, MODEL_DEPLOYMENT, VERSION
from modelfactory.operator.kube import api_client


def remaining(api: client.CustomObjectsApi, namespace: str, selector: str) -> list[str]:
    response = api.list_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        MODEL_DEPLOYMENT.plural,
        label_selector=selector,
        _preload_content=False,
    )
    return [item["metadata"]["name"] for item in json.loads(response.data)["items"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--selector", required=True, help="label selector of the ModelDeployments")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args(argv)
    api = client.CustomObjectsApi(api_client())
    names = remaining(api, args.namespace, args.selector)
    for name in names:
        api.delete_namespaced_custom_object(
            GROUP, VERSION, args.namespace, MODEL_DEPLOYMENT.plural, name
        )
    deadline = time.monotonic() + args.timeout
    while names:
        if time.monotonic() > deadline:
            print(
                f"still finalizing after {args.timeout:.0f}s: {', '.join(names)}", file=sys.stderr
            )
            return 1
        time.sleep(1)
        names = remaining(api, args.namespace, args.selector)
    print(f"deleted the ModelDeployments matching {args.selector} in {args.namespace}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
