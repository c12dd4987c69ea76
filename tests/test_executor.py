"""Sweeps beyond one process: the same run directory filled by a Dask cluster's workers, or by several
processes at once, holds exactly the files of one local run (arrays bitwise, attrs except the volatile
ones), with every job done once."""

import json
import multiprocessing
import os
import signal

import pandas as pd
import pytest

from conftest import assert_identical_runs
from tms_bayes.inference.executor import ExecutorOptions
from tms_bayes.inference.sweep import SweepSettings, load_run, run_sweep

pytest.importorskip("distributed")

TINY = SweepSettings(model="tms", n=(60, 120), seeds=2, chains=2, tune=40, draws=30)
QUIET = dict(progress=False, log=lambda *_: None)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    from tms_bayes.experiments.posterior_sweep import run

    out = tmp_path_factory.mktemp("local")
    run(TINY, out, **QUIET)
    return out


def _same_as_reference(out, reference):
    for n, s in [(n, s) for s in range(TINY.seeds) for n in TINY.n]:
        name = f"runs/n{n:06d}_seed{s:03d}.nc"
        assert_identical_runs(load_run(out / name), load_run(reference / name))
    volatile = ["wall_time_s"]
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "diagnostics.csv").drop(columns=volatile, errors="ignore"),
        pd.read_csv(reference / "diagnostics.csv").drop(columns=volatile, errors="ignore"),
    )


def test_a_local_cluster_of_two_workers_writes_the_local_executors_files(reference, tmp_path):
    from tms_bayes.experiments.posterior_sweep import run

    sweep = run(TINY, tmp_path / "dask", executor=ExecutorOptions("dask", workers=2), **QUIET)
    assert sorted(sweep.statuses.values()) == ["done"] * 4
    assert sweep.timings["workers"] >= 1 and sweep.compilations >= 2  # each worker compiles once
    _same_as_reference(tmp_path / "dask", reference)


def _writer(out, queue):
    sweep = run_sweep(TINY, out, progress=False, log=lambda *_: None)
    queue.put(dict(sweep.statuses))


def test_two_processes_on_one_directory_do_every_job_exactly_once(reference, tmp_path):
    from tms_bayes.experiments.posterior_sweep import write_diagnostics
    from tms_bayes.inference.sweep import load_sweep

    out = tmp_path / "shared"
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(out, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    statuses = [queue.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    done = [[k for k, v in st.items() if v == "done"] for st in statuses]
    assert sorted(done[0] + done[1]) == sorted(f"n{n:06d}_seed{s:03d}" for s in range(2) for n in TINY.n)
    assert not set(done[0]) & set(done[1])  # no job twice
    assert not list(out.rglob("*.tmp")) and not list((out / "locks").iterdir())
    write_diagnostics(load_sweep(out))
    _same_as_reference(out, reference)


@pytest.mark.slow
def test_a_worker_killed_mid_run_loses_only_its_job(reference, tmp_path):
    """One of two workers is killed (SIGKILL) while it samples: its job runs again (on the other
    worker or on the restarted one, taking over the dead worker's lock) and every file equals the
    local run's."""
    import threading
    import time

    from distributed import Client, LocalCluster

    from tms_bayes.experiments.posterior_sweep import write_diagnostics
    from tms_bayes.inference.executor import run_on_dask
    from tms_bayes.inference.sweep import Sweep

    out = tmp_path / "killed"
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        victim = sorted(client.scheduler_info()["workers"])[0]
        pid = client.run(os.getpid, workers=[victim])[victim]
        killed = []

        def kill_when_busy():  # once the victim holds a job's lock, i.e. while it samples
            for _ in range(1200):
                for lock in (out / "locks").glob("n*.lock") if (out / "locks").exists() else []:
                    try:
                        holder = json.loads(lock.read_text())["pid"]
                    except (OSError, ValueError, KeyError):
                        continue
                    if holder == pid:
                        os.kill(pid, signal.SIGKILL)
                        killed.append(lock.stem)
                        return
                time.sleep(0.05)

        killer = threading.Thread(target=kill_when_busy)
        killer.start()
        sweep = run_on_dask(Sweep(TINY, out), client, progress=False, log=lambda *_: None)
        killer.join()
    assert killed, "the victim never held a job"
    assert not list(out.rglob("*.tmp"))  # the killed worker's temporary file is removed
    assert sweep.statuses[killed[0]] == "done"  # the killed job was run again
    assert sorted(sweep.statuses) == sorted(f"n{n:06d}_seed{s:03d}" for s in range(2) for n in TINY.n)
    write_diagnostics(sweep)
    _same_as_reference(out, reference)
