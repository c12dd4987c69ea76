"""Sweeps beyond one process: the same run directory filled by a Dask cluster's workers, or by several
processes at once, holds exactly the files of one local run (arrays bitwise, attrs except the volatile
ones), with every job done once."""

import json
import multiprocessing
import os
import re
import signal
from dataclasses import replace

import numpy as np
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
    # each worker had cores ÷ 2 JAX devices, over which its job's 2 chains were sharded
    devices = max(1, (os.cpu_count() or 1) // 2)
    for n, s in sweep.finished():
        assert sweep.load(n, s).posterior.attrs["device_shards"] == (2 if devices >= 2 else 1)


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


# -- merging sweeps run apart -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def apart(tmp_path_factory):
    """TINY's two datasets as two sweeps run apart (dataset seed 1 first, as on another machine)."""
    root = tmp_path_factory.mktemp("apart")
    run_sweep(replace(TINY, seeds=1, seed_offset=1), root / "b", **QUIET)
    run_sweep(replace(TINY, seeds=1), root / "a", **QUIET)
    return root


def test_sweeps_run_apart_merge_into_the_sweep_over_all_their_seeds(reference, apart, tmp_path, capsys):
    """Two sweeps over dataset seeds {1} and {0} merge (CLI) into the directory one sweep over {0, 1}
    writes: the same run files (arrays bitwise, attrs except volatile ones), diagnostics, k-gon labels
    and occupancy with its bootstrap intervals."""
    from tms_bayes.analysis.occupancy import empirical_occupancy, sweep_labels
    from tms_bayes.cli import main
    from tms_bayes.inference.sweep import load_sweep

    assert (apart / "b/runs/n000060_seed001.nc").exists()  # named by dataset seed: no collision
    out = tmp_path / "merged"
    assert main(["merge", str(apart / "b"), str(apart / "a"), "--out", str(out)]) == 0
    assert "4 run files copied" in capsys.readouterr().out
    merged, single = load_sweep(out), load_sweep(reference)
    assert merged.settings == TINY
    _same_as_reference(out, reference)
    labels = [sweep_labels(merged), sweep_labels(single)]
    assert [x.attrs.pop("sweep") for x in labels] == [str(out), str(reference)]  # where they were read
    assert_identical_runs(*labels)
    assert_identical_runs(*[empirical_occupancy(x, n_boot=200) for x in labels])
    assert main(["merge", str(apart / "b"), str(apart / "a"), "--out", str(out)]) == 0  # again: nothing to do
    assert "0 run files copied" in capsys.readouterr().out


def test_mismatched_merges_are_refused_naming_the_difference(apart, tmp_path, capsys):
    """Sweeps of other job settings, a directory that is no sweep, --out among the sources or missing:
    one line, exit 2, nothing written."""
    from tms_bayes.cli import main

    other = tmp_path / "other"
    run_sweep(replace(TINY, n=(60,), draws=20, seed_offset=2, seeds=1), other, **QUIET)
    out = tmp_path / "merged"
    cases = [
        ([str(apart / "a"), str(other)], "draws: 30 in .*, 20 in .*; n: \\[60, 120\\] in .*, \\[60\\] in"),
        ([str(apart / "a"), str(tmp_path)], "has no manifest.json"),
        ([str(apart / "a"), str(apart / "b"), "--out", str(apart / "a")], "is one of the sources"),
        ([str(apart / "a"), str(apart / "b"), "--out", "None"], None),
    ]
    for argv, message in cases:
        if message is None:  # no --out at all
            argv = argv[:2]
            message = "merge needs --out"
        elif "--out" not in argv:
            argv = [*argv, "--out", str(out)]
        assert main(["merge", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and re.search(message, err), err
    assert not out.exists()


def test_a_sweep_with_a_gap_in_its_seeds_merges_with_the_gap_pending(reference, apart, tmp_path):
    """Dataset seeds {1} and {3}: the merged sweep covers 1…3 and seed 2's jobs are pending, for the
    sweep command to fill; its finished runs are analysed as the runs of their dataset seeds (labels of
    dataset seed 1 = those of seed index 1 in the sweep over {0, 1}), with the dataset seed in the
    diagnostics."""
    from tms_bayes.analysis.diagnostics import sweep_diagnostics
    from tms_bayes.analysis.occupancy import sweep_labels
    from tms_bayes.experiments.merge import merge
    from tms_bayes.inference.sweep import load_sweep

    far = tmp_path / "far"
    run_sweep(replace(TINY, seed_offset=3, seeds=1), far, **QUIET)
    lines = []
    merged = merge([apart / "b", far], tmp_path / "merged", log=lines.append)
    assert (merged.settings.seed_offset, merged.settings.seeds) == (1, 3)
    assert merged.pending() == [(60, 1), (120, 1)] and "dataset seeds 2" in lines[-1]
    labels = sweep_labels(merged)
    assert list(labels.seed.values) == [0, 2]  # seed indices of dataset seeds 1 and 3
    np.testing.assert_array_equal(labels.label.sel(seed=0).values, sweep_labels(load_sweep(reference)).label.sel(seed=1).values)
    table = sweep_diagnostics(merged)
    assert sorted(set(zip(table.seed, table.data_seed))) == [(0, 1), (2, 3)]


def test_a_sweep_named_by_seed_index_is_refused_and_converted_by_merge(apart, tmp_path):
    """A directory written before run files were named by dataset seed (seed_offset 1, files
    ``n…_seed000``) is refused with the command that converts it; the merge of it alone is the sweep
    as this version writes it."""
    import shutil

    from tms_bayes.experiments.merge import merge
    from tms_bayes.inference.sweep import load_sweep

    old = tmp_path / "old"
    shutil.copytree(apart / "b", old)
    body = json.loads((old / "manifest.json").read_text())
    del body["run_names"]
    for n in TINY.n:
        (old / f"runs/n{n:06d}_seed001.nc").rename(old / f"runs/n{n:06d}_seed000.nc")
        del body["completed"][f"n{n:06d}_seed001"]
        body["completed"][f"n{n:06d}_seed000"] = [f"runs/n{n:06d}_seed000.nc"]
    (old / "manifest.json").write_text(json.dumps(body))
    with pytest.raises(ValueError, match=f"tms-bayes merge {old} --out NEW_DIR"):
        load_sweep(old)
    merge([old], tmp_path / "new", log=lambda *_: None)
    for n in TINY.n:
        name = f"runs/n{n:06d}_seed001.nc"
        assert (tmp_path / "new" / name).read_bytes() == (apart / "b" / name).read_bytes()
    assert load_sweep(tmp_path / "new").finished() == [(60, 0), (120, 0)]


def test_smc_runs_on_a_local_cluster_write_the_local_executors_files(tmp_path):
    """SMC across n (one job per dataset seed and repeat) through a LocalCluster of two workers — the
    experiment's ``run(..., executor=)`` — writes the local run's files (arrays bitwise, attrs except
    volatile ones) and evidence tables."""
    from tms_bayes.experiments.smc import run
    from tms_bayes.inference.smc import SMCSettings

    sweep, smc = SweepSettings(n=(30, 60), seeds=2), SMCSettings(particles=32, mcmc_steps=2, leapfrog_steps=4)
    local = run(sweep, smc, tmp_path / "local", repeats=2, **QUIET)
    dask = run(sweep, smc, tmp_path / "dask", repeats=2, executor=ExecutorOptions("dask", workers=2), **QUIET)
    assert sorted(dask.statuses.values()) == ["done"] * 3 and dask.timings["workers"] >= 1
    for n in sweep.n:
        for s, r in [(0, 0), (1, 0), (0, 1)]:
            assert_identical_runs(dask.load(n, s, r), local.load(n, s, r))
    for repeats in (False, True):
        pd.testing.assert_frame_equal(
            dask.evidence(repeats).drop(columns="wall_time_s"), local.evidence(repeats).drop(columns="wall_time_s")
        )


def test_a_relu_truth_sweep_on_a_local_cluster_writes_the_local_executors_files(tmp_path):
    """A truth sweep (one job per θ) through a LocalCluster of two workers writes the local run's files."""
    import math

    from tms_bayes.experiments.relu import run
    from tms_bayes.inference.truth_sweep import TruthSweepSettings

    st = TruthSweepSettings(experiment="pt1", values=(1.2, math.pi / 2), trials=2, n=200, tune=30, draws=20)
    local = run(st, tmp_path / "local", **QUIET)
    dask = run(st, tmp_path / "dask", executor=ExecutorOptions("dask", workers=2), **QUIET)
    assert sorted(dask.statuses.values()) == ["done"] * 2 and dask.compilations >= 1
    for i in range(2):
        assert_identical_runs(dask.load(i), local.load(i))


@pytest.mark.slow
def test_relu_smc_mass_on_a_local_cluster_writes_the_local_executors_files(tmp_path):
    """The SMC posterior mass on a truth sweep's datasets (one job per (value, dataset, repeat)) through a
    LocalCluster of two workers writes the local run's files (the sweep itself need not be run)."""
    import math

    from tms_bayes.experiments.relu import run_smc_mass
    from tms_bayes.inference.relu_smc import ReluSMCSettings
    from tms_bayes.inference.truth_sweep import TruthSweepSettings

    st = TruthSweepSettings(experiment="pt1", values=(1.2, math.pi / 2), trials=2, n=200, tune=30, draws=20)
    smc = ReluSMCSettings(smc_values=(math.pi / 2,), smc_datasets=2, smc_repeats=1, smc_particles=32, smc_mcmc_steps=1)
    local_smc = run_smc_mass(st, smc, tmp_path / "local" / "smc", **QUIET)
    dask_smc = run_smc_mass(st, smc, tmp_path / "dask" / "smc", executor=ExecutorOptions("dask", workers=2), **QUIET)
    assert sorted(dask_smc.statuses.values()) == ["done"] * 2
    for job in local_smc.jobs():
        assert_identical_runs(dask_smc.load(*job), local_smc.load(*job))


def test_sgd_dynamics_on_a_local_cluster_writes_the_local_executors_results(tmp_path):
    """Training runs in batches (one job each) through a LocalCluster of two workers: the parts and the
    combined ``dynamics.nc`` equal the local run's (arrays bitwise, attrs except volatile ones)."""
    import xarray as xr

    from tms_bayes.experiments.dynamics import run
    from tms_bayes.inference.dynamics import DynamicsSettings

    st = DynamicsSettings(runs=4, run_batch=2, epochs=40, checkpoints=5, llc_steps=40, llc_chains=1, llc_burn_in=10)
    local = run(st, tmp_path / "local", **QUIET)
    dask = run(st, tmp_path / "dask", executor=ExecutorOptions("dask", workers=2), **QUIET)
    assert_identical_runs(dask, local)
    for part in ("runs_00000_00001", "runs_00002_00003"):
        with xr.open_dataset(tmp_path / "dask/parts" / f"{part}.nc") as a, xr.open_dataset(
            tmp_path / "local/parts" / f"{part}.nc"
        ) as b:
            assert_identical_runs(a.load(), b.load())
