"""A sweep's jobs on a Dask cluster (``pip install 'tms-bayes[dask]'``; the default install and the main
job need none).

A job is data: (the run directory's ``spec()`` — its kind and settings —, its path, the job's key
tuple).  Four kinds of run directory are distributed: posterior sweeps (one job per (n, seed):
:class:`~tms_bayes.inference.sweep.Sweep`), SMC runs (one job per dataset seed and repeat:
:class:`~tms_bayes.inference.smc_sweep.SMCSweep`), ReLU truth sweeps (one job per θ or ϑ:
:class:`~tms_bayes.inference.truth_sweep.TruthSweep`) and SGD dynamics (one job per batch of runs:
:class:`~tms_bayes.inference.dynamics.DynamicsRun`).  Each worker reopens the directory and runs its
``run_job`` on the job — claim the job with its lock file, sample, commit the run files atomically,
release — so the run directory is filled exactly as the local executor fills it, and several processes
or clusters pointed at one directory split the work (a held job is skipped, a finished one not redone).
A worker compiles the programs on its first job and reuses them for every later job with the same
``program_key()`` (one cache per worker process).  A worker killed mid-job loses that job only: the
scheduler runs it again elsewhere, and the retry takes over the dead worker's lock (it carries the
task's key, on any host) — or a re-run of the command resumes.

Each worker process gets (cores of its host) ÷ (workers on that host) JAX CPU devices, over which the
job's chains are sharded; sharded and unsharded chains give the same draws, so the files equal the
local executor's bit for bit (volatile attrs aside).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import dataclass

from .. import _validate
from .._options import setting

__all__ = ["ExecutorOptions", "dask_client", "run_jobs", "run_on_dask", "reopen"]

EXECUTORS = ("local", "dask")

#: per worker process: {``run.program_key()``: runner} — programs compiled once per worker (posterior
#: sweeps that differ only in the seeds they cover share one)
_RUNNERS: dict[str, object] = {}


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


def run_jobs(run, executor: ExecutorOptions | None = None, *, progress: bool = True, log=print, **local):
    """Run the pending jobs of the run directory ``run`` where ``executor`` says: in this process
    (``run.run(progress=, log=, **local)``, the default) or on a Dask cluster (:func:`run_on_dask`).
    Returns ``run``."""
    with dask_client(executor or ExecutorOptions()) as client:
        if client is None:
            run.run(progress=progress, log=log, **local)
        else:
            run_on_dask(run, client, progress=progress, log=log)
    return run


def run_on_dask(run, client, *, progress: bool = True, log=print):
    """Run the pending jobs of ``run`` — a run directory with the job protocol (module docstring: a
    posterior sweep, an SMC run, a truth sweep, a dynamics run) — on the workers of ``client`` (a
    ``distributed.Client``); returns ``run`` when every job is finished (or held by another writer).
    ``run.compilations`` and ``run.timings["compile_s"]`` become the totals over the workers."""
    from distributed import as_completed
    from tqdm.auto import tqdm

    todo = run.prepare(log)
    if not todo:
        return run

    workers = client.scheduler_info().get("workers", {})
    per_host: dict[str, int] = {}
    for info in workers.values():
        per_host[info["host"]] = per_host.get(info["host"], 0) + 1
    spec = run.spec()
    batch = uuid.uuid4().hex[:12]  # task keys unique to this submission (they are the locks' tokens)
    futures = [
        client.submit(
            _worker_job,
            spec,
            str(run.out.resolve()),
            job,
            per_host,
            key=f"tms-bayes-{spec['kind']}-{run.name(*job)}-{batch}",
            pure=False,
            retries=2,
        )  # fmt: skip
        for job in todo
    ]
    compile_s: dict[str, tuple[int, float]] = {}
    bar = tqdm(total=len(futures), desc=f"{spec['kind']} (dask)", unit="job", disable=not progress)
    try:
        for future in as_completed(futures):
            out = future.result()  # a job's error is raised here, as in the local executor
            run.statuses[out["name"]] = out["status"]
            if out["status"] == "held":
                log(f"{out['name']} is being run by another process; skipped here")
            compile_s[out["worker"]] = (out["compilations"], out["compile_s"])
            bar.update(1)
    finally:
        bar.close()
    run.rundir.refresh()
    from ..store.atomic import remove_orphans

    remove_orphans(run.out)  # a worker killed mid-write could not remove its temporary file
    run.compilations = sum(c for c, _ in compile_s.values())
    run.timings = {"compile_s": sum(t for _, t in compile_s.values()), "workers": len(compile_s)}
    return run


def reopen(spec: dict, out: str):
    """The run directory ``out`` described by ``spec`` (``run.spec()``), as a worker opens it."""
    if spec["kind"] == "sweep":
        from .sweep import Sweep, SweepSettings

        return Sweep(SweepSettings.from_dict(spec["settings"]), out)
    if spec["kind"] == "smc":
        from .smc import SMCSettings
        from .smc_sweep import SMCSweep
        from .sweep import SweepSettings

        settings = spec["settings"]
        return SMCSweep(
            SweepSettings.from_dict(settings["sweep"]),
            SMCSettings(**settings["smc"]),
            out,
            repeats=spec["repeats"],
        )
    if spec["kind"] == "truth-sweep":
        from .truth_sweep import TruthSweep, TruthSweepSettings

        return TruthSweep(TruthSweepSettings.from_dict(spec["settings"]), out)
    if spec["kind"] == "relu-smc":
        from .relu_smc import from_settings

        return from_settings(spec["settings"], out)
    if spec["kind"] == "dynamics":
        from .dynamics import DynamicsRun, DynamicsSettings

        return DynamicsRun(DynamicsSettings.from_dict(spec["settings"]), out, spec["init"])
    raise ValueError(f"no executor for {spec['kind']!r} runs")


def _worker_job(spec: dict, out: str, job: tuple, per_host: dict) -> dict:
    """On a worker: job ``job`` of the run directory ``out`` (:func:`reopen`), with this worker's
    cached runner."""
    from distributed import get_worker

    from .._devices import configure

    worker = get_worker()
    cores = os.cpu_count() or 1
    configure(
        max(1, cores // max(1, per_host.get(worker.address.split("://")[-1].rsplit(":", 1)[0], 1))),
        strict=False,
    )  # fmt: skip  (before this process's first JAX computation; then fixed)
    run = reopen(spec, out)  # this directory's state
    key = f"{spec['kind']}:{run.program_key()}"
    if key not in _RUNNERS:
        _RUNNERS[key] = run.runner()
    runner = _RUNNERS[key]
    status = run.run_job(*job, runner, token=str(worker.get_current_task()))
    return {
        "name": run.name(*job),
        "status": status,
        "worker": worker.address,
        "compilations": runner.compilations,
        "compile_s": runner.timings.get("compile_s", 0.0),
    }
