"""``python -m modelfactory.operator.replay_job``: one replay of a ModelDeployment's replay step,
as the Job the operator starts runs it (:mod:`modelfactory.operator.replays`).

The challenger predicts the champion's newest logged requests
(:mod:`modelfactory.monitoring.replay`) and the result is recorded on the challenger's version
(tag ``rollout.replay``), where the operator's next reconcile reads and judges it. A challenger
that cannot be loaded or answers nothing is a result that fails the replay; a prediction log or
registry that cannot be read exits non-zero, recording nothing (the rollout keeps waiting, up to
its progressDeadlineSeconds, and says it is replaying).
"""

from __future__ import annotations

import argparse
import sys

from modelfactory.config import get_settings
from modelfactory.monitoring.rollout_evidence import RolloutEvidence
from modelfactory.registry import Registry
from modelfactory.rollout.actions import RunReplay
from modelfactory.use_cases import monitored_use_case


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelfactory.operator.replay_job")
    parser.add_argument("--model", required=True)
    parser.add_argument("--challenger", required=True)
    parser.add_argument("--champion")
    parser.add_argument("--last", type=int, required=True, help="The newest N logged records.")
    parser.add_argument("--since", type=float, required=True, help="Seconds since the epoch.")
    parser.add_argument("--use-case")
    arguments = parser.parse_args(argv)
    settings = get_settings()
    asked = RunReplay(arguments.challenger, arguments.champion, arguments.last, arguments.since)
    try:
        registry = Registry(settings.mlflow_tracking_uri)
        case = monitored_use_case(arguments.model, arguments.use_case, registry)
        evidence = RolloutEvidence(case, registry.tracking_uri, settings)
        result = evidence.replay(arguments.model, asked)
    except Exception as exc:  # the log or the registry: nothing is recorded, the rollout waits
        print(
            f"replay of {arguments.model} v{asked.version}: {type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return 1
    print(result.as_tag())
    return 0


if __name__ == "__main__":
    sys.exit(main())
