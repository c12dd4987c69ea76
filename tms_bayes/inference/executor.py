"""A sweep's jobs on a Dask cluster (``pip install 'tms-bayes[dask]'``; the default install and the main
job need none).

A job is data: (settings as a dict, run directory, n, seed).  Each worker runs
:meth:`~tms_bayes.inference.sweep.Sweep.run_job` on it — claim the job with its lock file, sample,
commit the run file atomically, release — so the run directory is filled exactly as the local executor
fills it, and several processes or clusters pointed at one directory split the work (a held job is
skipped, a finished one not redone).  A worker compiles the sweep's programs on its first job and
reuses them for every later job with the same settings (one cache per worker process).  A worker killed
mid-job loses that job only: the scheduler runs it again elsewhere, and the retry takes over the dead
worker's lock (it carries the task's key, on any host) — or a re-run of the command resumes.

Each worker process gets (cores of its host) ÷ (workers on that host) JAX CPU devices, over which the
job's chains are sharded; sharded and unsharded chains give the same draws, so the files equal the
local executor's bit for bit (volatile attrs aside).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass

from .. import _validate
from .._options import setting

__all__ = ["ExecutorOptions", "dask_client", "run_on_dask"]

EXECUTORS = ("local", "dask")

#: per worker process: {job settings JSON: runner} — programs compiled once per worker, shared by
#: sweeps that differ only in the seeds they cover
_RUNNERS: dict[str, tuple] = {}


@dataclass(frozen=True)
class ExecutorOptions:
    """Where a sweep's jobs run: in this process (``local``) or on a Dask cluster (``dask``: the
    scheduler at ``scheduler``, or a ``LocalCluster`` of ``workers`` processes started here)."""

    executor: str = setting("local", "where jobs run: this process, or a Dask cluster", choices=EXECUTORS)
    scheduler: str | None = setting(None, "Dask scheduler address (tcp://host:port)", parse=str, show="none")
    workers: int | None = setting(
        None, "start a LocalCluster of this many worker processes", parse=int, show="2 when no --scheduler"
    )

    def __post_init__(self):
        _validate.choice("executor", self.executor, EXECUTORS)
        if self.workers is not None:
            _validate.integer("workers", self.workers, minimum=1, maximum=1024)
        if self.executor == "local" and (self.scheduler is not None or self.workers is not None):
            raise ValueError("--scheduler and --workers need --executor dask")
        if self.scheduler is not None and self.workers is not None:
            raise ValueError("give --scheduler (an existing cluster) or --workers (a local one), not both")


@contextlib.contextmanager
def dask_client(options: ExecutorOptions):
    """A ``distributed.Client`` for ``options`` (None for the local executor); a LocalCluster started
    here is closed on exit."""
    if options.executor == "local":
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ValueError(
            "--executor dask needs Dask's distributed scheduler: pip install 'tms-bayes[dask]'"
        ) from None
    if options.scheduler is not None:
        with Client(options.scheduler) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=options.workers or 2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def run_on_dask(sweep, client, *, progress: bool = True, log=print):
    """Run the pending jobs of ``sweep`` (a :class:`~tms_bayes.inference.sweep.Sweep`) on the workers
    of ``client`` (a ``distributed.Client``; module docstring); returns the sweep when every job is
    finished (or held by another writer).  ``sweep.compilations`` and ``sweep.timings["compile_s"]``
    become the totals over the workers."""
    from distributed import as_completed
    from tqdm.auto import tqdm

    todo = sweep.prepare(log)
    if not todo:
        return sweep

    workers = client.scheduler_info().get("workers", {})
    per_host: dict[str, int] = {}
    for info in workers.values():
        per_host[info["host"]] = per_host.get(info["host"], 0) + 1
    settings = sweep.settings.to_dict()
    futures = [
        client.submit(
            _worker_job,
            settings,
            str(sweep.out.resolve()),
            n,
            s,
            per_host,
            key=f"tms-bayes-{sweep.name(n, s)}-{os.getpid()}-{id(sweep)}",
            pure=False,
            retries=2,
        )  # fmt: skip
        for n, s in todo
    ]
    compile_s: dict[str, tuple[int, float]] = {}
    bar = tqdm(total=len(futures), desc="sweep (dask)", unit="job", disable=not progress)
    try:
        for future in as_completed(futures):
            out = future.result()  # a job's error is raised here, as in the local executor
            sweep.statuses[out["name"]] = out["status"]
            if out["status"] == "held":
                log(f"{out['name']} is being run by another process; skipped here")
            compile_s[out["worker"]] = (out["compilations"], out["compile_s"])
            bar.update(1)
    finally:
        bar.close()
    sweep.rundir.refresh()
    from ..store.atomic import remove_orphans

    remove_orphans(sweep.out)  # a worker killed mid-write could not remove its temporary file
    sweep.compilations = sum(c for c, _ in compile_s.values())
    sweep.timings = {"compile_s": sum(t for _, t in compile_s.values()), "workers": len(compile_s)}
    return sweep


def _worker_job(settings: dict, out: str, n: int, s: int, per_host: dict) -> dict:
    """On a worker: job (n, s) of the sweep ``settings`` in ``out``, with this worker's cached runner."""
    from distributed import get_worker

    from .._devices import configure
    from .sweep import Sweep, SweepSettings

    worker = get_worker()
    cores = os.cpu_count() or 1
    configure(
        max(1, cores // max(1, per_host.get(worker.address.split("://")[-1].rsplit(":", 1)[0], 1))),
        strict=False,
    )  # fmt: skip  (before this process's first JAX computation; then fixed)
    sweep = Sweep(SweepSettings.from_dict(settings), out)  # this directory's state
    key = json.dumps(sweep.settings.job_settings(), sort_keys=True)
    if key not in _RUNNERS:
        _RUNNERS[key] = sweep.runner()
    runner = _RUNNERS[key]
    status = sweep.run_job(n, s, runner, token=str(worker.get_current_task()))
    return {
        "name": sweep.name(n, s),
        "status": status,
        "worker": worker.address,
        "compilations": runner.compilations,
        "compile_s": runner.timings.get("compile_s", 0.0),
    }
