"""A run directory checks itself: swapped, truncated and foreign run files are detected and named when
read (one line from the CLI, exit 2), and set aside (kept, never deleted) and redone by the next run of
the sweep, which then holds exactly what an untouched sweep holds."""

import shutil

import pytest

from conftest import assert_identical_runs
from tms_bayes.cli import main
from tms_bayes.inference.sweep import SweepSettings, load_run, load_sweep, run_sweep

TINY = dict(model="tms", n=(60, 120), seeds=1, chains=2, tune=40, draws=30)
QUIET = dict(progress=False, log=lambda *_: None)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An untouched tiny sweep."""
    out = tmp_path_factory.mktemp("reference")
    run_sweep(SweepSettings(**TINY), out, **QUIET)
    return out


def _copy(reference, tmp_path):
    out = tmp_path / "sweep"
    shutil.copytree(reference, out)
    return out


def _one_line_refusal(argv, capsys, *names):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tms-bayes: error:") and "Traceback" not in err
    for name in names:
        assert name in err
    return err


def _redone_identical(out, reference, set_aside: int):
    log = []
    sweep = run_sweep(SweepSettings(**TINY), out, progress=False, log=log.append)
    assert sum("set aside" in line for line in log) == set_aside, log
    assert len(list((out / "set_aside").glob("*.nc.*"))) == set_aside  # kept, not deleted
    for n in TINY["n"]:
        assert_identical_runs(
            load_run(sweep.rundir.path(f"n{n:06d}_seed000")),
            load_run(reference / f"runs/n{n:06d}_seed000.nc"),
        )


@pytest.mark.slow
def test_swapped_run_files_are_named_and_redone(reference, tmp_path, capsys):
    out = _copy(reference, tmp_path)
    a, b = out / "runs/n000060_seed000.nc", out / "runs/n000120_seed000.nc"
    a.rename(tmp_path / "tmp.nc")
    b.rename(a)
    (tmp_path / "tmp.nc").rename(b)
    with pytest.raises(
        ValueError, match=r"n000060_seed000.nc is not the run n=60, data_seed=0.*n: 120 there, 60 expected"
    ):
        load_sweep(out).load(60, 0)
    _one_line_refusal(["criteria", str(out)], capsys, "n000060_seed000.nc", "not the run n=60")
    _redone_identical(out, reference, set_aside=2)


@pytest.mark.slow
def test_truncated_run_file_is_named_and_redone(reference, tmp_path, capsys):
    out = _copy(reference, tmp_path)
    path = out / "runs/n000120_seed000.nc"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="n000120_seed000.nc is not a readable run file"):
        load_sweep(out).load(120, 0)
    _one_line_refusal(["criteria", str(out)], capsys, "n000120_seed000.nc", "truncated or corrupt")
    _redone_identical(out, reference, set_aside=1)


@pytest.mark.slow
def test_foreign_run_file_is_named_and_redone(reference, tmp_path, capsys):
    """A run of another sweep (other data seeds) copied in under the right name."""
    out = _copy(reference, tmp_path)
    other = tmp_path / "other"
    run_sweep(SweepSettings(**{**TINY, "n": (60,), "seed_offset": 7}), other, **QUIET)
    shutil.copy(other / "runs/n000060_seed007.nc", out / "runs/n000060_seed000.nc")
    with pytest.raises(ValueError, match="data_seed: 7 there, 0 expected"):
        load_sweep(out).load(60, 0)
    _one_line_refusal(["criteria", str(out)], capsys, "n000060_seed000.nc")
    _redone_identical(out, reference, set_aside=1)


@pytest.mark.slow
def test_garbage_in_place_of_a_run_file(reference, tmp_path, capsys):
    out = _copy(reference, tmp_path)
    (out / "runs/n000060_seed000.nc").write_text("not HDF5 at all")
    _one_line_refusal(["criteria", str(out)], capsys, "n000060_seed000.nc")
    _redone_identical(out, reference, set_aside=1)


@pytest.mark.slow
def test_a_finished_read_only_sweep_can_be_opened(reference, tmp_path):
    """Opening a finished sweep rewrites nothing (its manifest is unchanged), so a read-only copy can be
    listed and resumed-as-finished."""
    out = _copy(reference, tmp_path)
    before = (out / "manifest.json").stat().st_mtime_ns
    run_sweep(SweepSettings(**TINY), out, **QUIET)
    assert (out / "manifest.json").stat().st_mtime_ns == before


@pytest.mark.slow
def test_a_complete_but_unrecorded_run_file_is_adopted(reference, tmp_path):
    """Killed between writing a run file and recording it: the file, not the manifest, is the truth."""
    import json

    out = _copy(reference, tmp_path)
    body = json.loads((out / "manifest.json").read_text())
    del body["completed"]["n000120_seed000"]
    (out / "manifest.json").write_text(json.dumps(body))
    log = []
    sweep = run_sweep(SweepSettings(**TINY), out, progress=False, log=log.append)
    assert any("adopted" in line for line in log) and sweep.compilations == 0  # nothing sampled again
    assert sweep.finished() == sweep.jobs()


@pytest.mark.slow
def test_claims_keep_two_writers_off_one_job(reference, tmp_path):
    """A job claimed by a live process is left to it; a claim left by a dead process is taken over."""
    import json
    import os
    import socket
    import subprocess
    import sys

    out = tmp_path / "sweep"
    settings = SweepSettings(**TINY)
    (out / "locks").mkdir(parents=True)
    lock = out / "locks" / "n000060_seed000.lock"
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getppid(), "time": 0}))  # alive
    log = []
    sweep = run_sweep(settings, out, progress=False, log=log.append)
    assert sweep.pending() == [(60, 0)] and any("another process" in line for line in log)  # n = 120 ran
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout), "time": 0}))
    sweep = run_sweep(settings, out, progress=False, log=log.append)
    assert sweep.pending() == [] and not lock.exists()  # taken over, run, released
    assert_identical_runs(
        load_run(sweep.rundir.path("n000060_seed000")), load_run(reference / "runs/n000060_seed000.nc")
    )


def test_swapped_truncated_and_unrecorded_files_in_one_directory(reference, tmp_path, capsys):
    """The default suite's check (the separate cases are ``slow``): a directory with a swapped pair, then
    one of them truncated, is refused by name; one re-run sets both aside and redoes them, identical."""
    out = _copy(reference, tmp_path)
    a, b = out / "runs/n000060_seed000.nc", out / "runs/n000120_seed000.nc"
    a.rename(tmp_path / "tmp.nc")
    b.rename(a)
    (tmp_path / "tmp.nc").rename(b)
    _one_line_refusal(["criteria", str(out)], capsys, "n000060_seed000.nc", "n: 120 there, 60 expected")
    b.write_bytes(b.read_bytes()[:1000])
    with pytest.raises(ValueError, match="n000120_seed000.nc is not a readable run file"):
        load_sweep(out).load(120, 0)
    _redone_identical(out, reference, set_aside=2)
