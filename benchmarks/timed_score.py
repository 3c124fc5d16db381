"""`modelfactory score` as the CLI runs it, noting when each of its steps returned.

    BENCH_MARKS=marks.json python benchmarks/timed_score.py score MODEL --data ... --to ...

Writes to ``BENCH_MARKS``: when the model was loaded (epoch seconds, and the CPU seconds
the process had used by then), the part summary (with its seconds per stage) and how long
publishing took (wall and CPU); ``batch_scoring.py`` turns them
into the run's budget. Nothing else is imported before the CLI, so start-up is the CLI's.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


def main() -> None:
    import sys

    from modelfactory.local.cli import app
    from modelfactory.steps import scoring

    marks: dict = {}
    load_model, score, publish = scoring.load_model, scoring.score, scoring.publish

    def timed_load(*args, **kwargs):
        model = load_model(*args, **kwargs)
        marks["loaded"], marks["loaded_cpu"] = time.time(), time.process_time()
        return model

    def timed_score(*args, **kwargs):
        marks["scoring"] = time.time()
        marks["summary"] = score(*args, **kwargs)
        marks["scored"] = time.time()
        return marks["summary"]

    def timed_publish(*args, **kwargs):
        started, cpu = time.time(), time.process_time()
        result = publish(*args, **kwargs)
        marks["commit"] = time.time() - started
        marks["commit_cpu"] = time.process_time() - cpu
        marks["published"] = time.time()
        return result

    scoring.load_model, scoring.score, scoring.publish = timed_load, timed_score, timed_publish
    try:
        app(sys.argv[1:], standalone_mode=False)
    finally:
        Path(os.environ["BENCH_MARKS"]).write_text(json.dumps(marks))


if __name__ == "__main__":
    main()
