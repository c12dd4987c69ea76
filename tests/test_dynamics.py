"""SGD dynamics (SPEC 4): training, plateau detection, matching to the catalogue, the BAH logic."""

import json

import numpy as np
import pandas as pd
import pytest

from tms_bayes.analysis.dynamics import bah_check, bah_summary, detect_plateaus, match_plateaus, trajectory_table, transition_table
from tms_bayes.cli import main
from tms_bayes.inference.dynamics import DynamicsSettings, checkpoint_epochs, run_dynamics
from tms_bayes.theory import kgon

SMALL = {"runs": 3, "epochs": 60, "checkpoints": 8, "llc_steps": 60, "llc_chains": 1, "llc_burn_in": 10, "run_batch": 2}


def test_training_reduces_the_loss_and_resumes(tmp_path):
    s = DynamicsSettings(**SMALL)
    ds = run_dynamics(s, tmp_path / "d", progress=False, log=None)
    assert ds.sizes == {"run": 3, "checkpoint": len(checkpoint_epochs(60, 8)), "hidden": 2, "feature": 6}
    assert (ds.loss.isel(checkpoint=-1) < ds.loss.isel(checkpoint=0) - 0.003).all()  # measured: 0.117 -> 0.108
    assert (ds.loss.diff("checkpoint") < 1e-4).all()  # SGD at lr 0.005 does not climb
    assert np.isfinite(ds.llc).all() and ds.attrs["lr"] == 0.005 and ds.attrs["batch_size"] == 20
    parts = sorted((tmp_path / "d" / "parts").glob("*.nc"))
    assert len(parts) == 2
    again = run_dynamics(s, tmp_path / "d", progress=False, log=None)  # resumes from the parts
    np.testing.assert_array_equal(again.W.values, ds.W.values)
    with pytest.raises(ValueError, match="different settings .*lr"):
        run_dynamics(DynamicsSettings(**{**SMALL, "lr": 0.01}), tmp_path / "d", progress=False, log=None)


def _staircase(steps, levels, drops, width=0.15):
    """A loss falling through ``levels`` with sigmoidal drops (in log t) at ``drops``."""
    lt = np.log(np.maximum(steps, 1.0))
    loss = np.full(lt.shape, levels[0], dtype=float)
    for (a, b), d in zip(zip(levels, levels[1:]), drops):
        loss += (b - a) / (1 + np.exp(-(lt - np.log(d)) / width))
    return loss


def test_plateau_detection_on_synthetic_staircases():
    steps = np.concatenate([[0], np.geomspace(1, 2e5, 60)])
    loss = _staircase(steps, [0.16, 0.104, 0.069], drops=[300, 3e4])
    found = detect_plateaus(loss, steps)
    assert len(found) == 3
    for (first, last), level in zip(found, [0.16, 0.104, 0.069]):
        assert loss[last] == pytest.approx(level, rel=0.01)
    assert steps[found[0][1]] < 300 < steps[found[1][0]] and steps[found[1][1]] < 3e4 < steps[found[2][0]]
    # a steady power-law decay (slope 0.5 in log-log) has no plateau
    assert detect_plateaus(0.3 * np.maximum(steps, 1) ** -0.5, steps) == []
    with pytest.raises(ValueError, match="steps must be increasing"):
        detect_plateaus(loss, steps[::-1])


@pytest.mark.parametrize("phase,k,sigma", [("5", 5, 0), ("6", 6, 0), ("4++", 4, 2)])
def test_runs_started_at_catalogue_points_stay_and_are_matched(tmp_path, phase, k, sigma):
    pt = kgon(k, 6, sigma=sigma)
    s = DynamicsSettings(**{**SMALL, "runs": 2, "epochs": 100, "run_batch": 2})
    ds = run_dynamics(s, tmp_path / phase, progress=False, log=None, init=(pt.W, pt.b))
    pl = match_plateaus(ds)
    assert set(pl.run) == {0, 1}
    assert (pl.phase == phase).all() and (pl.matched_by == "label").all()
    assert (trajectory_table(pl).sequence == phase).all() and len(transition_table(pl)) == 0


def _plateau(run, first, phase, loss, lam, llc=np.nan, se=np.nan, saddle=False):
    return {"run": run, "first": first, "last": first + 3, "step_first": 10 * first, "step_last": 10 * first + 30, "label": phase, "phase": phase,
            "matched_by": "label", "matched": True, "loss": loss, "loss_n": loss, "catalogue_loss": loss, "lambda_theory": lam, "saddle": saddle,
            "llc": llc, "llc_se": se}  # fmt: skip


def test_bah_uses_one_estimator_per_transition_and_marks_saddles():
    rows = [
        # run 0: 4++- -> 4+ -> 5 (both saddles, then a minimum with theory λ = 7): λ̂ at both ends of each
        # Δλ, never λ̂ at one end and theory at the other; ΔL/Δλ = -0.049 then -0.035/1.5 (increases)
        _plateau(0, 0, "4++-", 0.153, np.nan, 2.0, 0.1, True), _plateau(0, 5, "4+", 0.104, np.nan, 3.0, 0.1, True),
        _plateau(0, 10, "5", 0.069, 7.0, 4.5, 0.1),
        # run 1: a transition up in loss fails; run 2: Δλ within noise is inconclusive
        _plateau(1, 0, "5", 0.069, 7.0, 4.5, 0.1), _plateau(1, 5, "4", 0.111, np.nan, 7.5, 0.1),
        _plateau(2, 0, "4", 0.111, np.nan, 6.9, 0.5), _plateau(2, 5, "4++", 0.097, np.nan, 7.0, 0.5),
        # run 3: theory at both ends (5 -> 6), so theory is used at both, not the λ̂s
        _plateau(3, 0, "5", 0.069, 7.0, 4.5, 0.1), _plateau(3, 5, "6", 0.048, 8.5, 4.9, 0.1),
    ]  # fmt: skip
    bah = bah_check(pd.DataFrame(rows))
    assert list(bah.verdict) == ["pass", "pass", "fail", "inconclusive", "pass"]
    assert list(bah.lambda_source) == ["llc_hat", "llc_hat", "llc_hat", "llc_hat", "theory"]
    assert list(bah.saddle) == ["both", "from", "", "", ""]
    assert bah.dL.iloc[0] == pytest.approx(-0.049) and bah.dlambda.iloc[1] == pytest.approx(1.5)
    assert bah.dlambda.iloc[4] == pytest.approx(1.5) and bah.dlambda_se.iloc[4] == 0.0
    assert bah.ratio_increases.iloc[1] == 1.0 and np.isnan(bah.ratio_increases.iloc[0])
    assert bah_summary(bah) == {
        "transitions": 5, "pass": 3, "fail": 1, "inconclusive": 1, "at_saddle": 2, "consecutive_pairs": 1, "ratio_increases": 1
    }  # fmt: skip
    t = transition_table(pd.DataFrame(rows))
    assert t["count"].sum() == 5


def test_cli_dynamics_bad_input(capsys):
    assert main(["dynamics", "--runs", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "runs must be an integer >= 1" in err[0]
    with pytest.raises(ValueError, match="optimizer must be one of sgd, adam"):
        DynamicsSettings(optimizer="rmsprop")


def test_cli_dynamics_writes_report(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["dynamics", "--runs", "2", "--epochs", "40", "--checkpoints", "6", "--llc-steps", "40", "--llc-chains", "1", "--no-progress", "--out", str(out)]) == 0
    for f in ("dynamics.nc", "plateaus.csv", "sequences.csv", "transitions.csv", "bah.csv", "loss_complexity.png", "report.md"):
        assert (out / f).exists(), f
    assert json.loads((out / "manifest.json").read_text())["settings"]["runs"] == 2
    assert "BAH:" in capsys.readouterr().out


def test_a_batch_held_by_another_process_is_skipped_and_named_not_combined(tmp_path):
    """Two writers on one dynamics directory: a batch another live process holds (its lock file) is not
    trained again here (the lock names a live process: this test's parent), and combining is refused
    naming it; once the lock is gone a later run does the batch."""
    import json
    import os
    import socket

    s = DynamicsSettings(**{**SMALL, "runs": 4, "epochs": 20, "llc": False})
    lock = tmp_path / "d" / "locks" / "runs_00002_00003.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getppid(), "time": 0, "token": None}))
    with pytest.raises(ValueError, match="1 batches of runs are not finished .runs_00002_00003"):
        run_dynamics(s, tmp_path / "d", progress=False, log=None)
    assert (tmp_path / "d/parts/runs_00000_00001.nc").exists() and not (tmp_path / "d/parts/runs_00002_00003.nc").exists()
    lock.unlink()  # the other writer is gone (without finishing): this run does the batch
    ds = run_dynamics(s, tmp_path / "d", progress=False, log=None)
    assert ds.sizes["run"] == 4
