"""Atomic writes: a failed write leaves the previous complete file and no temporary file."""

import pytest

from tms_bayes.store.atomic import atomic_write, write_text


def test_failed_write_keeps_old_file(tmp_path):
    target = tmp_path / "result.txt"
    write_text(target, "complete old result")

    def broken(tmp):
        with open(tmp, "w") as fh:
            fh.write("half a resu")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_text() == "complete old result"
    assert [p.name for p in tmp_path.iterdir()] == ["result.txt"]


def test_creates_parent_directories(tmp_path):
    path = write_text(tmp_path / "a" / "b" / "c.txt", "x")
    assert path.read_text() == "x"


def test_run_directory_resumes_refuses_and_stays_inside(tmp_path):
    """RunDir: a job counts as finished once recorded and on disk; other settings or another kind are
    refused; a manifest path outside the directory is refused; format-1 posterior sweeps are read and
    other format-1 kinds refused naming the version that wrote them."""
    import json

    from tms_bayes.store.rundir import RunDir, read_kind

    rd = RunDir(tmp_path / "r", "sweep", {"n": [1, 2]}, "a sweep").start()
    rd.commit("job1", {"runs/job1.txt": lambda p: write_text(p, "one")})
    again = RunDir(tmp_path / "r", "sweep", {"n": [1, 2]}, "a sweep")
    assert again.done("job1") and again.pending(["job1", "job2"]) == ["job2"] and again.path("job1").read_text() == "one"
    (tmp_path / "r" / "runs" / "job1.txt").unlink()  # a recorded job whose file has gone is pending again
    assert RunDir(tmp_path / "r", "sweep", {"n": [1, 2]}, "a sweep").pending(["job1"]) == ["job1"]
    with pytest.raises(ValueError, match="different settings.*n: \\[1, 2\\] there, \\[3\\] now"):
        RunDir(tmp_path / "r", "sweep", {"n": [3]}, "a sweep")
    with pytest.raises(ValueError, match="is not an SMC run: it holds a 'sweep' run"):
        RunDir(tmp_path / "r", "smc", {"n": [1, 2]}, "an SMC run")
    body = json.loads((tmp_path / "r" / "manifest.json").read_text())
    body["completed"] = {"evil": ["../../outside.txt"]}
    (tmp_path / "outside.txt").write_text("secret")
    (tmp_path / "r" / "manifest.json").write_text(json.dumps(body))
    with pytest.raises(ValueError, match="outside the run directory"):
        RunDir(tmp_path / "r", "sweep", {"n": [1, 2]}, "a sweep")
    old = tmp_path / "old"
    old.mkdir()
    (old / "manifest.json").write_text(json.dumps({"tms_bayes_version": "0.1.0", "settings": {"n": [1]}, "completed": {}}))
    assert read_kind(old) == "sweep" and RunDir(old, "sweep", {"n": [1]}, "a sweep").completed == {}
    (old / "manifest.json").write_text(json.dumps({"kind": "smc", "tms_bayes_version": "0.1.0", "settings": {}, "completed": [0]}))
    with pytest.raises(ValueError, match="written by tms-bayes 0.1.0 in the previous run-directory layout"):
        RunDir(old, "smc", {}, "an SMC run")
    (old / "manifest.json").write_text(json.dumps({"kind": "smc", "format": 99, "tms_bayes_version": "9.0", "settings": {}}))
    with pytest.raises(ValueError, match="upgrade tms-bayes"):
        RunDir(old, "smc", {}, "an SMC run")


def test_run_files_with_the_old_dim_names_are_read_with_todays(tmp_path):
    """A format-1 sweep resumed by this version mixes old files (W (row, col), X (obs, xfeature)) with new ones
    (W (hidden, feature)); load_run renames the old dims so the runs of one sweep line up."""
    import warnings

    import arviz as az
    import numpy as np

    from tms_bayes.inference.sweep import load_run

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old = az.from_dict(posterior={"W": np.zeros((1, 3, 2, 6)), "b": np.zeros((1, 3, 6))}, observed_data={"X": np.zeros((5, 6))},
                           dims={"W": ["row", "col"], "b": ["col"], "X": ["obs", "xfeature"]})
    old.to_netcdf(tmp_path / "old.nc", engine="h5netcdf")
    idata = load_run(tmp_path / "old.nc")
    assert idata.posterior.W.dims == ("chain", "draw", "hidden", "feature") and idata.posterior.b.dims == ("chain", "draw", "feature")
    assert idata.observed_data.X.dims == ("obs", "feature")


def test_temporaries_of_killed_writers_are_removed_and_live_ones_kept(tmp_path):
    """A writer killed outright (SIGKILL) leaves its temporary file; the next write of that file, and
    RunDir.start for the whole directory, remove those of dead processes of this host, never a live
    writer's or another host's."""
    import subprocess
    import sys

    from tms_bayes.store.atomic import remove_orphans, temporary_tag, write_text

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_tag = temporary_tag().rsplit("-", 1)[0] + f"-{int(dead.stdout)}"
    orphan = tmp_path / f".report.md.{dead_tag}.abc123.tmp"
    live = tmp_path / f".report.md.{temporary_tag()}.def456.tmp"
    foreign = tmp_path / f".report.md.otherhost-{int(dead.stdout)}.ghi789.tmp"
    for f in (orphan, live, foreign):
        f.write_text("half")
    write_text(tmp_path / "report.md", "whole")
    assert not orphan.exists() and live.exists() and foreign.exists()
    nested = tmp_path / "runs" / f".n000100_seed000.nc.{dead_tag}.x.tmp"
    nested.parent.mkdir()
    nested.write_text("half")
    assert remove_orphans(tmp_path) == [nested] and live.exists()


def test_run_files_written_before_data_seed_was_recorded_are_matched_by_seed_and_offset():
    """An old posterior-sweep file records its seed index and ``setting_seed_offset``, not ``data_seed``:
    its dataset seed is derived from them, for the check and for the diagnostics."""
    from tms_bayes.store.rundir import data_seed_of, run_mismatch

    old = {"n": 60, "seed": 1, "setting_seed_offset": 2, "setting_draws": 30}
    assert data_seed_of(old) == 3 and data_seed_of({"n": 60, "seed": 1}) == 1 and data_seed_of({}) is None
    assert run_mismatch(old, {"n": 60, "data_seed": 3}, {"draws": 30, "seeds": 4}) == ""
    assert run_mismatch(old, {"n": 60, "data_seed": 1}, {"draws": 30}) == "data_seed: 3 there, 1 expected"
    assert run_mismatch(old, {"n": 60, "data_seed": 3}, {"draws": 40}) == "setting_draws: 30 there, 40 expected"


def test_release_gives_up_only_this_processs_claim(tmp_path):
    """A job released twice (a run stopped while handing it to its writer thread, which releases it too)
    must not free a claim that another process has taken in between: that writer would lose its job."""
    import json
    import os
    import socket

    from tms_bayes.store.rundir import RunDir

    rd = RunDir(tmp_path / "r", "sweep", {"n": [1, 2]}, "a sweep").start()
    lock = tmp_path / "r" / "locks" / "job1.lock"
    assert rd.take("job1") is None and lock.exists()
    rd.release("job1")
    assert not lock.exists()
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getppid(), "time": 0}))  # a live writer
    rd.release("job1")
    assert lock.exists() and rd.take("job1") == "held"
