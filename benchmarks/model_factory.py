"""Benchmark: train a Prophet model for every Rossmann store (1115) with the model factory.

Prints, for one run on this machine:
- wall time of the parallel factory over all stores (train + holdout evaluation + refit),
- the same work done sequentially, measured on an evenly spread sample of stores in the
  same run (before and after the parallel run, averaged) and extrapolated per store to
  all stores (said so in the output),
- the speedup (sequential estimate / parallel measured),
- peak memory: the parent's and the largest child's peak RSS (getrusage), and the peak
  of parent + all children's RSS summed, sampled every 0.2 s (psutil),
- optionally (``--compare-backends``) the wall time of each parallel backend and chunk
  size on a sample, which is how the factory's defaults were chosen.

``--sharded 1,2,4`` measures the sharded pipeline instead: the compiled forecasting pipeline
(``pipelines/forecasting.yaml``) run by the kfp local runner against a throwaway MLflow
server, once per number of shards, each run registering its own model. Per run: the wall
time of the whole run and of the shard and merge steps, the peak memory (summed RSS of its
process tree: the task, its pool workers, CmdStan) of each shard task and of the whole run,
and the ratios against the 1-shard run measured in the same invocation. The machine's load
(other processes' CPU) is printed beside each run.

Usage: python benchmarks/model_factory.py [--data PATH] [--stores N] [--sequential-sample N]
       [--jobs N] [--compare-backends] [--save DIR] [--sharded 1,2,4]
"""

from __future__ import annotations

import argparse
import re
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from modelfactory.data.rossmann import load_rossmann
from modelfactory.forecasting.config import ForecastConfig
from modelfactory.forecasting.factory import default_jobs, fit_stores, train_model_factory
from modelfactory.forecasting.features import prophet_frame, split_by_store
from modelfactory.forecasting.model_set import save_model_set
from modelfactory.forecasting.split import time_split

sys.path.insert(0, str(Path(__file__).resolve().parent))
from datasets import ROSSMANN_TRAIN, SHARED_DATA  # noqa: E402

DEFAULT_DATA = str(SHARED_DATA / ROSSMANN_TRAIN)


class TreeMemorySampler:
    """Samples the summed RSS of this process and all its descendants (peak, in bytes)."""

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            import psutil
        except ImportError:  # pragma: no cover - psutil ships with mlflow
            return
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


class CpuShare:
    """CPU seconds used by this process tree vs by the whole machine over a phase.

    The machine may be shared: a parallel run needs every core, so other processes'
    load lowers its speedup far more than it slows a one-core sequential loop. Each
    phase prints how many cores other processes used meanwhile. (loky keeps its
    workers alive, so their CPU is not counted as ours in the loky comparison.)
    """

    def __init__(self, label: str):
        self.label = label

    @staticmethod
    def _own() -> float:
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # reaped workers and CmdStan
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    @staticmethod
    def _machine() -> float:
        try:
            import psutil
        except ImportError:  # pragma: no cover
            return float("nan")
        t = psutil.cpu_times()
        return (
            t.user
            + t.system
            + getattr(t, "nice", 0)
            + getattr(t, "irq", 0)
            + getattr(t, "softirq", 0)
            + getattr(t, "steal", 0)
        )

    def __enter__(self):
        self.wall, self.own, self.machine = time.perf_counter(), self._own(), self._machine()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.own = self._own() - self.own
        self.machine = self._machine() - self.machine
        self.others = max(0.0, self.machine - self.own)
        print(
            f"  [{self.label}: wall {self.wall:.1f} s, this benchmark used "
            f"{self.own / self.wall:.2f} cores, "
            f"other processes {self.others / self.wall:.2f} cores]"
        )


def mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:,.0f} MiB"


class TaskMemorySampler(TreeMemorySampler):
    """Peak summed RSS per pipeline task: each direct child process of this one (a kfp task's
    subprocess) with all its descendants, labelled by the task folder its command line names
    (``for-loop-1-iteration-2/train-store-shard``)."""

    LABEL = re.compile(r"/((?:for-loop-\d+-iteration-\d+/)?[a-z-]+)/executor_output\.json")

    def __init__(self, interval: float = 0.2):
        super().__init__(interval)
        self.per_task: dict[str, int] = {}

    def _run(self):
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for child in me.children():
                try:
                    tree = [child, *child.children(recursive=True)]
                    rss = sum(p.memory_info().rss for p in tree)
                    label = next(
                        (m[1] for p in tree if (m := self.LABEL.search(" ".join(p.cmdline())))),
                        None,
                    )
                except psutil.Error:
                    continue
                total += rss
                if label:
                    self.per_task[label] = max(self.per_task.get(label, 0), rss)
            try:
                total += me.memory_info().rss
            except psutil.Error:
                pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)


def sharded(args) -> int:
    """The compiled forecasting pipeline with 1, 2, 4 ... shards on the kfp local runner."""
    import json

    import pandas as pd

    from modelfactory.local.mlflow_server import EmbeddedMlflow
    from modelfactory.local.pipeline_runs import compiled_pipeline, run_locally
    from modelfactory.local.ports import free_port

    counts = [int(n) for n in args.sharded.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-shards-"))
    data = args.data
    if args.stores:
        frame = pd.read_csv(data, dtype={"StateHoliday": str}, low_memory=False)
        data = str(work / "train.csv")
        frame[frame["Store"] <= args.stores].to_csv(data, index=False)
    server = EmbeddedMlflow(work / "mlflow", port=free_port())
    uri = server.start()
    results = []
    try:
        for n_shards in counts:
            events: list = []
            stamps: list[tuple[float, str, str]] = []

            def record(event, events=events, stamps=stamps):
                events.append(event)
                stamps.append((time.monotonic(), event.task, event.status))

            root = work / f"runs-{n_shards}"
            with TaskMemorySampler(0.5) as sampler, CpuShare(f"{n_shards} shard(s)") as cpu:
                summary = run_locally(
                    compiled_pipeline("forecasting"),
                    {
                        "source": data,
                        "mlflow_tracking_uri": uri,
                        "model_name": f"store-sales-bench-{n_shards}",
                        "n_shards": n_shards,
                        "n_jobs": args.jobs or 0,
                    },
                    root,
                    record,
                )
            seconds = {e.task: 0.0 for e in events}
            for event in events:
                if event.status != "running":
                    seconds[event.task] += event.seconds
            outputs = sorted(root.glob("*/for-loop-*-iteration-*/train-store-shard/model"))
            stores = [len(json.loads((o / "manifest.json").read_text())["stores"]) for o in outputs]
            shard_peaks = {
                label: rss
                for label, rss in sampler.per_task.items()
                if "train-store-shard" in label
            }
            # From the first shard task's start to the merge's start (it waits for every shard).
            first = min(t for t, task, st in stamps if task == "train-store-shard")
            last = min(t for t, task, st in stamps if task == "merge-store-models")
            results.append(
                {
                    "n": n_shards,
                    "wall": cpu.wall,
                    "others": cpu.others / cpu.wall,
                    "own": cpu.own / cpu.wall,
                    "shard_steps": last - first,
                    "merge": seconds.get("merge-store-models", float("nan")),
                    "stores": stores,
                    "shard_peaks": shard_peaks,
                    "run_peak": sampler.peak,
                    "registered": summary["stores"],
                }
            )
            registered = summary["stores"]
            print(f"{n_shards} shard(s): {registered} stores, wall {cpu.wall:.0f} s", flush=True)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    base = results[0]
    print(
        f"\nsharded pipeline, kfp local runner, {base['registered']} stores, jobs per shard "
        f"{args.jobs or 'all cores'}:"
    )
    base_peak = max(base["shard_peaks"].values(), default=1)
    for r in results:
        peaks = sorted(r["shard_peaks"].values())
        print(
            f"  N={r['n']}: wall {r['wall']:.0f} s ({r['wall'] / base['wall']:.2f}x the 1-shard "
            f"run); shard steps, first start to merge start, {r['shard_steps']:.0f} s "
            f"({r['shard_steps'] / base['shard_steps']:.2f}x); merge {r['merge']:.0f} s; "
            f"stores per shard {r['stores']}; peak memory per shard task "
            f"{', '.join(mib(p) for p in peaks)} (largest {max(peaks, default=0) / base_peak:.2f}x "
            f"the 1-shard task); whole run peak (MLflow server included) {mib(r['run_peak'])}; "
            f"machine: this run {r['own']:.2f} cores, other processes {r['others']:.2f} cores"
        )
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument(
        "--stores", type=int, default=None, help="first N stores only (default: all)"
    )
    parser.add_argument("--sequential-sample", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--compare-backends", action="store_true")
    parser.add_argument("--save", default=None, help="keep the model set in this directory")
    parser.add_argument(
        "--sharded", default="", help="e.g. 1,2,4: the sharded pipeline with these shard counts"
    )
    args = parser.parse_args(argv)
    if args.sharded:
        return sharded(args)
    config = ForecastConfig()
    jobs = args.jobs or default_jobs()

    with TreeMemorySampler() as sampler:
        started = time.perf_counter()
        sales = load_rossmann(args.data)
        if args.stores:
            sales = sales[sales["Store"] <= args.stores]
        load_seconds = time.perf_counter() - started
        all_stores = sorted(sales["Store"].unique().tolist())
        print(
            f"data: {args.data}: {len(sales):,} rows, {len(all_stores)} stores, "
            f"read+validated in {load_seconds:.1f} s"
        )
        print(f"config: {config.to_dict()}")
        print(f"cores available: {jobs}")

        # Sequential reference: same per-store work, in this process, on a spread sample.
        step = max(1, len(all_stores) // args.sequential_sample)
        sample = all_stores[::step][: args.sequential_sample]
        splits = time_split(
            split_by_store(prophet_frame(sales[sales["Store"].isin(sample)])),
            config.holdout_weeks,
            config.min_train_days,
        ).stores
        fit_stores({sample[0]: splits[sample[0]]}, config, backend="sequential")  # warm imports
        started = time.perf_counter()
        with CpuShare("sequential sample") as seq_cpu:
            fit_stores(splits, config, backend="sequential")
        seq_sample_seconds = time.perf_counter() - started
        seq_per_store = seq_sample_seconds / len(splits)
        seq_estimate = seq_per_store * len(all_stores)
        print(
            f"sequential: {len(splits)} stores (every {step}th) in {seq_sample_seconds:.1f} s = "
            f"{seq_per_store:.3f} s/store -> EXTRAPOLATED to {len(all_stores)} stores: "
            f"{seq_estimate:.0f} s"
        )

        if args.compare_backends:
            compare = dict(list(splits.items()))
            for backend, chunk in [
                ("processes", 1),
                ("processes", None),
                ("loky", 1),
                ("loky", None),
            ]:
                started = time.perf_counter()
                with CpuShare(f"{backend} chunk {chunk or 'auto'}"):
                    fit_stores(compare, config, n_jobs=jobs, backend=backend, chunk_size=chunk)
                took = time.perf_counter() - started
                print(
                    f"  backend={backend:<9} chunk={chunk or 'auto':<4}: {len(compare)} stores in "
                    f"{took:.1f} s, speedup {seq_sample_seconds / took:.2f}"
                )

        started = time.perf_counter()
        with CpuShare("parallel factory, all stores") as par_cpu:
            result = train_model_factory(sales, config, n_jobs=jobs)
        parallel_seconds = time.perf_counter() - started
        # The machine may be shared: measure the sequential sample again after the
        # parallel run and use the mean of both, so a load change cannot flatter the speedup.
        started = time.perf_counter()
        with CpuShare("sequential sample again"):
            fit_stores(splits, config, backend="sequential")
        seq_after = time.perf_counter() - started
        seq_per_store = (seq_sample_seconds + seq_after) / (2 * len(splits))
        seq_estimate = seq_per_store * len(all_stores)
        print(
            f"sequential sample again after the parallel run: {seq_after:.1f} s; mean "
            f"{seq_per_store:.3f} s/store -> EXTRAPOLATED sequential time for "
            f"{len(all_stores)} stores: "
            f"{seq_estimate:.0f} s"
        )
        target = Path(args.save) if args.save else Path(tempfile.mkdtemp(prefix="model_set_"))
        started = time.perf_counter()
        save_model_set(target, result, metadata={"source": args.data})
        save_seconds = time.perf_counter() - started
        size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
        if not args.save:
            shutil.rmtree(target)

    parent = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    m = result.metrics
    print(
        f"parallel factory ({jobs} processes): {len(result.models)} models, "
        f"{len(result.failures)} failures, "
        f"wall {parallel_seconds:.1f} s ({parallel_seconds / 60:.1f} min)"
    )
    if result.failures:
        print(f"  failures: {dict(list(result.failures.items())[:10])}")
    print(
        "speedup vs sequential (extrapolated from the sample): "
        f"{seq_estimate / parallel_seconds:.2f}x"
    )
    # Load-independent view: CPU seconds per store in each mode. On idle cores the
    # parallel run would take (its CPU per store / jobs) per store of wall time.
    seq_cpu_per_store = seq_cpu.own / len(splits)
    par_cpu_per_store = par_cpu.own / max(1, len(result.models) + len(result.failures))
    print(
        f"CPU per store: sequential {seq_cpu_per_store:.3f} s, parallel {par_cpu_per_store:.3f} s "
        f"-> projected speedup on {jobs} idle cores: "
        f"{jobs * seq_cpu_per_store / par_cpu_per_store:.2f}x (a projection, not a measurement)"
    )
    print(f"model set: {mib(size)} on disk, saved in {save_seconds:.1f} s")
    print(
        f"peak memory: parent {mib(parent)}, largest child {mib(child)}, "
        f"parent+children summed (sampled) {mib(sampler.peak)}"
    )
    print(
        f"holdout ({config.holdout_weeks} weeks, open days): "
        f"mean MAPE prophet {m['mean_mape']:.4f} vs "
        f"seasonal-naive {m['baseline_mean_mape']:.4f}; median {m['median_mape']:.4f} vs "
        f"{m['baseline_median_mape']:.4f}; "
        f"pooled RMSE {m['pooled_rmse']:.0f} vs {m['baseline_pooled_rmse']:.0f}; "
        f"prophet better on {m['share_better']:.1%} of stores"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
