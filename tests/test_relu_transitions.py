"""ReLU phase-transition experiments (SPEC 5): truths, effective weights, phases, trial filter,
fractions and critical values, the truth-sweep engine, λ̂ per phase and the CLI."""

import math

import numpy as np
import pytest
import xarray as xr

from tms_bayes.analysis.relu_phases import (
    classify_relu,
    critical_value,
    effective_weights,
    phase_fractions,
    pt1_phase,
    pt2_phase,
    trial_filter,
    truth_sweep_labels,
    vanishing_value,
)
from tms_bayes.cli import main, parse_values
from tms_bayes.experiments.relu import phase_llc
from tms_bayes.inference.truth_sweep import TruthSweepSettings, load_truth_sweep, run_truth_sweep, trial_data
from tms_bayes.models.relu import PT1_THETAS, PT2_VARTHETAS, experiment_truth, pt1_truth, pt2_truth


# ---------------------------------------------------------------------------------------------
# Truths (SPEC 5), by hand
# ---------------------------------------------------------------------------------------------
def test_pt1_truth_matches_spec_at_chosen_points():
    # f(x) = ReLU(cos θ x1 + sin θ x2 − 0.3) + ReLU(−cos θ x1 + sin θ x2 − 0.3)
    t = pt1_truth(1.0)
    X = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.5, -0.5], [0.0, 0.0]])
    expected = [math.cos(1) - 0.3, 2 * (math.sin(1) - 0.3), math.cos(1) - 0.3, 0.0, 0.0]
    np.testing.assert_allclose(t(X), expected, atol=1e-14)
    # at θ = π/2 both nodes are (0, 1): f(x) = 2 ReLU(x2 − 0.3)
    half = pt1_truth(math.pi / 2)
    np.testing.assert_allclose(half(np.array([[0.3, 1.0], [1.0, 0.0], [-0.7, 0.5]])), [1.4, 0.0, 0.4], atol=1e-14)


def test_pt2_truth_matches_spec_at_chosen_points():
    # nodes at angles π/3, −π/3, −π (= (−1, 0)), b = −0.3, output weights 1, 1, ϑ
    for vt in (1.0, 2.0, 2.75):
        t = pt2_truth(vt)
        X = np.array([[-1.0, 0.0], [1.0, 1.0], [1.0, -1.0], [0.0, 0.0], [-0.5, 0.0]])
        s = math.sqrt(3) / 2
        expected = [0.7 * vt, 0.5 + s - 0.3, 0.5 + s - 0.3, 0.0, 0.2 * vt]
        np.testing.assert_allclose(t(X), expected, atol=1e-14)
    np.testing.assert_allclose(pt2_truth(1.0).w.sum(axis=0), 0.0, atol=1e-14)  # weight annihilation at ϑ = 1


def test_default_grids_are_spec5():
    assert PT1_THETAS[0] == 1.0 and PT1_THETAS[18] == 1.36 and len(PT1_THETAS) == 22
    np.testing.assert_allclose(np.diff(PT1_THETAS[:19]), 0.02, atol=1e-12)
    assert PT1_THETAS[-3:] == (1.43, 1.50, math.pi / 2)
    assert PT2_VARTHETAS[:11] == tuple(np.round(np.arange(1.0, 2.01, 0.1), 1)) and PT2_VARTHETAS[-4:] == (2.25, 2.5, 2.75, 3.0)
    with pytest.raises(ValueError, match="experiment"):
        experiment_truth("pt3", 1.0)
    with pytest.raises(ValueError, match="theta"):
        pt1_truth(2.0)


# ---------------------------------------------------------------------------------------------
# Effective weights and phases
# ---------------------------------------------------------------------------------------------
def test_effective_weights_are_invariant_to_the_scaling_symmetry(rng):
    w, q = rng.normal(size=(50, 3, 2)), rng.normal(size=(50, 3))
    alpha = rng.uniform(0.1, 10, size=(50, 3))
    np.testing.assert_allclose(effective_weights(alpha[..., None] * w, q / alpha), effective_weights(w, q), rtol=1e-12)
    # and the function is unchanged, so phases are too
    t = pt2_truth(1.5)
    lab = pt2_phase(w, q, t.w, t.q)
    np.testing.assert_array_equal(pt2_phase(alpha[..., None] * w, q / alpha, t.w, t.q), lab)
    with pytest.raises(ValueError, match="q must have shape"):
        effective_weights(w, q[:, :2])


def test_pt1_phases_and_their_permutation_invariance(rng):
    eps = 0.3
    degenerate = (np.array([[0.0, 2.0], [0.05, 0.0]]), np.array([1.0, 1.0]))  # ‖ŵ‖ = 2 and 0.05
    split = (np.array([[0.0, 1.0], [0.0, 1.0]]), np.array([-1.1, 0.9]))  # both norms ≈ 1 (|q| counts)
    neither = (np.array([[0.0, 1.5], [0.0, 0.5]]), np.array([1.0, 1.0]))
    truth = pt1_truth(1.2)
    W = np.stack([degenerate[0], split[0], neither[0], truth.w])
    Q = np.stack([degenerate[1], split[1], neither[1], truth.q])
    lab = pt1_phase(W, Q, epsilon=eps)
    assert list(lab) == ["degenerate", "non-degenerate", "neither", "non-degenerate"]
    # scaling one node keeps its effective weight: (αw, q/α)
    np.testing.assert_array_equal(pt1_phase(W * np.array([3.0, 0.2])[None, :, None], Q / np.array([3.0, 0.2]), epsilon=eps), lab)
    np.testing.assert_array_equal(pt1_phase(W[:, ::-1], Q[:, ::-1], epsilon=eps), lab)  # node permutation
    noisy_w = rng.normal(size=(200, 2, 2))
    noisy_q = rng.normal(size=(200, 2))
    np.testing.assert_array_equal(pt1_phase(noisy_w[:, ::-1], noisy_q[:, ::-1]), pt1_phase(noisy_w, noisy_q))
    assert list(pt1_phase(W, Q, epsilon=0.01)) == ["neither"] * 3 + ["non-degenerate"]  # ε is honoured


def test_pt2_phases_are_permutation_invariant_and_find_the_reversed_network(rng):
    t = pt2_truth(1.8)
    eff0 = t.q[:, None] * t.w
    samples_w = np.stack([t.w, -t.w, t.w + 0.4, t.w + rng.normal(scale=0.05, size=t.w.shape)])
    samples_q = np.stack([t.q, t.q, t.q, t.q])
    lab = pt2_phase(samples_w, samples_q, t.w, t.q)
    assert list(lab) == ["non-annihilation", "annihilation", "neither", "non-annihilation"]
    for perm in ([1, 0, 2], [2, 0, 1], [2, 1, 0]):
        np.testing.assert_array_equal(pt2_phase(samples_w[:, perm], samples_q[:, perm], t.w, t.q), lab)
    # the ϑ node's ball is centred at ϑ·w⁰ (effective weight), not at w⁰
    assert pt2_phase(eff0 / 1.0, np.ones(3), t.w, t.q).item() == "non-annihilation"
    assert classify_relu("pt2", samples_w, samples_q, truth=(t.w, t.q)).tolist() == lab.tolist()
    with pytest.raises(ValueError, match="truth"):
        classify_relu("pt2", samples_w, samples_q)


# ---------------------------------------------------------------------------------------------
# Trial filter, fractions, critical values
# ---------------------------------------------------------------------------------------------
def test_trial_filter_drops_a_planted_outlier():
    rng = np.random.default_rng(3)
    mean_loss = 1.0 + 0.01 * rng.normal(size=(5, 8))
    mean_loss[2, 6] = 1.4  # an unconverged trial
    keep, z = trial_filter(mean_loss)
    assert keep[2].tolist() == [True] * 6 + [False, True]  # the outlier inflates the spread: only it goes
    assert abs(z[2, 6]) > 2.0
    # on well-behaved trials the rule still drops about P(|Z| ≥ 1.5) ≈ 13 % (here 5 of the other 32)
    assert 0 < (~keep[[0, 1, 3, 4]]).sum() <= 8
    # |z| ≤ √(T − 1): with three trials nothing can be dropped at 1.5
    keep3, z3 = trial_filter(np.array([[1.0, 1.0, 5.0]]))
    assert keep3.all() and np.abs(z3).max() == pytest.approx(math.sqrt(2))
    assert trial_filter(np.ones((2, 4)))[0].all()  # identical trials: all kept
    with pytest.raises(ValueError, match="z_max"):
        trial_filter(mean_loss, z_max=0)


def _synthetic_labels(values, deg_share, trials=6, draws=200, seed=0, experiment="pt1"):
    """Labels with a known degenerate share per value (each trial a Bernoulli mixture)."""
    rng = np.random.default_rng(seed)
    names = ("degenerate", "non-degenerate") if experiment == "pt1" else ("annihilation", "non-annihilation")
    lab = np.where(rng.random((len(values), trials, draws)) < np.asarray(deg_share)[:, None, None], names[0], names[1])
    loss = 1.0 + 0.01 * rng.normal(size=lab.shape) + 0.02 * (lab == names[0])
    keep = np.ones((len(values), trials), bool)
    return xr.Dataset(
        {"label": (("value", "trial", "draw"), lab), "L_n": (("value", "trial", "draw"), loss), "kept": (("value", "trial"), keep)},
        coords={"value": np.asarray(values), "trial": np.arange(trials), "draw": np.arange(draws)},
        attrs={"experiment": experiment, "parameter": "theta", "epsilon": 0.3, "z_max": 1.5, "n": 100},
    )


def test_fractions_and_critical_value_on_a_known_crossing():
    values = np.round(np.arange(1.0, 1.5001, 0.05), 2)
    share = np.clip(0.5 + 2.0 * (values - 1.23), 0, 1)  # degenerate overtakes at θ = 1.23
    labels = _synthetic_labels(values, share)
    labels["kept"][3, 0] = False
    frac = phase_fractions(labels, n_boot=300)
    np.testing.assert_allclose(frac.share.sel(phase="degenerate").values, share, atol=0.05)  # 1200 draws: SE ≤ 0.015
    assert int(frac.kept_trials[3]) == 5
    assert (frac.lower <= frac.share + 1e-12).all() and (frac.share <= frac.upper + 1e-12).all()
    # the minimum loss of a phase is a minimum over its draws only
    lab, Ln = labels.label.values, labels.L_n.values
    assert float(frac.min_L_n.sel(phase="degenerate")[-1]) == pytest.approx(Ln[-1][lab[-1] == "degenerate"].min())
    cr = critical_value(frac, "non-degenerate", "degenerate")
    assert cr["critical"] == pytest.approx(1.23, abs=0.02)
    assert cr["lower"] <= cr["critical"] <= cr["upper"] and cr["upper"] - cr["lower"] < 0.06
    with pytest.raises(ValueError, match="unknown phase"):
        critical_value(frac, "5", "degenerate")


def test_vanishing_value_brackets_the_disappearance():
    values = np.array([1.0, 1.5, 2.0, 2.25, 2.5, 3.0])
    share = np.array([0.4, 0.3, 0.1, 0.0, 0.0, 0.0])
    frac = phase_fractions(_synthetic_labels(values, share, experiment="pt2"), n_boot=200)
    v = vanishing_value(frac, "annihilation")
    assert (v["last_present"], v["first_absent"]) == (2.0, 2.25)
    assert v["last_present_interval"] == (2.0, 2.0)


# ---------------------------------------------------------------------------------------------
# The truth-sweep engine, λ̂ per phase and the report
# ---------------------------------------------------------------------------------------------
SMALL = dict(values=(1.2, math.pi / 2), trials=3, n=400, tune=60, draws=40)


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("pt1")
    return run_truth_sweep(TruthSweepSettings(experiment="pt1", **SMALL), out, progress=False, log=lambda *_: None)


def test_truth_sweep_runs_every_trial_on_its_own_data_through_one_program(small_sweep):
    st = small_sweep.settings
    assert small_sweep.compilations == 1
    X0, y0 = trial_data(st, 1, 0)
    X1, _ = trial_data(st, 1, 1)
    assert X0.shape == (400, 2) and not np.allclose(X0, X1)  # a fresh dataset per trial
    np.testing.assert_array_equal(trial_data(st, 1, 0)[1], y0)  # regenerated exactly from its seed
    idata = small_sweep.load(1)
    post = idata.posterior
    # independent trials sit on their own dim, not on chain: ArviZ's R̂ is then per trial, never across unrelated posteriors
    assert post.sizes["chain"] == 1 and post.sizes["trial"] == 3 and post.sizes["draw"] == 40
    assert idata.sample_stats.diverging.dims == ("chain", "draw", "trial")
    import arviz as az

    assert set(az.summary(idata, var_names=["c"], kind="diagnostics").index) == {"c[0]", "c[1]", "c[2]"}
    assert post.attrs["value"] == pytest.approx(math.pi / 2) and post.attrs["beta_used"] == pytest.approx(1 / math.log(400))
    # stored L_n is the mean squared error of each draw on its own trial's data
    from tms_bayes.analysis.relu_phases import trial_draws
    from tms_bayes.models.relu import relu_forward

    w, b, q, c, L = (trial_draws(post, k) for k in ("w", "b", "q", "c", "L_n"))
    assert w.shape == (3, 40, 2, 2)
    for t in range(3):
        X, y = trial_data(st, 1, t)
        k = 7
        f = relu_forward(X, w[t, k], b[t, k], q[t, k], c[t, k])
        assert float(L[t, k]) == pytest.approx(np.mean((y - f) ** 2), rel=1e-9)


def test_truth_sweep_resumes_and_refuses_other_settings(small_sweep, tmp_path):
    again = run_truth_sweep(small_sweep.settings, small_sweep.out, progress=False, log=lambda *_: None)
    assert again.compilations == 0 and len(again.completed) == 2
    reopened = load_truth_sweep(small_sweep.out)
    assert reopened.settings == small_sweep.settings
    with pytest.raises(ValueError, match="trials"):
        run_truth_sweep(TruthSweepSettings(experiment="pt1", **{**SMALL, "trials": 4}), small_sweep.out, progress=False)
    with pytest.raises(ValueError, match="truth-sweep directory"):
        load_truth_sweep(tmp_path)
    with pytest.raises(ValueError, match="theta"):
        TruthSweepSettings(experiment="pt1", values=(1.0, 3.0))
    with pytest.raises(ValueError, match="repeat"):
        TruthSweepSettings(experiment="pt2", values=(1.0, 1.0))


def test_a_swapped_truth_sweep_file_is_named_set_aside_and_redone(small_sweep, tmp_path):
    """Two swapped run files: reading one names it; the next run sets both aside (kept) and redoes
    them bit for bit."""
    import shutil

    from conftest import assert_identical_runs

    out = tmp_path / "pt1"
    shutil.copytree(small_sweep.out, out)
    a, b = out / "runs/v000.nc", out / "runs/v001.nc"
    a.rename(tmp_path / "tmp.nc")
    b.rename(a)
    (tmp_path / "tmp.nc").rename(b)
    with pytest.raises(ValueError, match=r"v000.nc is not the run index=0.*index: 1 there, 0 expected"):
        load_truth_sweep(out).load(0)
    log = []
    again = run_truth_sweep(small_sweep.settings, out, progress=False, log=log.append)
    assert sum("set aside" in line for line in log) == 2 and again.compilations > 0, log
    assert len(list((out / "set_aside").glob("v00*.nc.*"))) == 2
    for i in (0, 1):
        assert_identical_runs(again.load(i), small_sweep.load(i))


def test_labels_report_and_llc_per_phase(small_sweep, tmp_path):
    from tms_bayes.analysis.relu_report import relu_report

    labels = truth_sweep_labels(small_sweep)
    assert labels.label.shape == (2, 3, 40) and labels.attrs["epsilon"] == 0.3
    llc = phase_llc(small_sweep, labels, [math.pi / 2], phases=["degenerate", "non-degenerate"], progress=False, draws=300, step_size=1e-4, chains=2)
    assert llc.llc.shape == (1, 2)
    present = [p for p in ("degenerate", "non-degenerate") if (labels.label.sel(value=math.pi / 2, method="nearest") == p).any()]
    for p in ("degenerate", "non-degenerate"):
        if p in present:
            assert np.isfinite(float(llc.llc.sel(phase=p)[0])) or str(llc.notes.sel(phase=p)[0].values)
        else:
            assert str(llc.notes.sel(phase=p)[0].values) == "no draws in this phase"
    rep = relu_report(small_sweep, tmp_path / "rep", llc=llc, coarse_grain=True)
    for name in ("fractions.csv", "trials.csv", "fractions.png", "min_loss.png", "effective_weights.png", "raw_vs_effective.png", "report.md", "llc.csv", "labels.nc"):
        assert (tmp_path / "rep" / name).exists(), name
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "θ_c" in text and "Trial filter" in text and "λ̂ per phase" in text
    np.testing.assert_allclose(rep.fractions.share.sum("phase").values, 1.0)


def test_pt2_sweep_and_report(tmp_path):
    from tms_bayes.analysis.relu_report import relu_report

    sw = run_truth_sweep(TruthSweepSettings(experiment="pt2", values=(1.0, 2.5), trials=2, n=300, tune=40, draws=30), tmp_path / "pt2", progress=False, log=lambda *_: None)
    rep = relu_report(sw, tmp_path / "pt2" / "report", coarse_grain=False)
    assert list(rep.fractions.phase.values) == ["non-annihilation", "annihilation", "neither"]
    assert "annihilation phase is last present" in (tmp_path / "pt2" / "report" / "report.md").read_text()


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
def test_parse_values():
    assert parse_values("1.1,1.26,pi/2", "--values") == (1.1, 1.26, math.pi / 2)
    assert parse_values("1:1.1:0.05", "--values") == (1.0, 1.05, 1.1)
    assert parse_values(None, "--values") is None
    with pytest.raises(ValueError, match="--values"):
        parse_values("1,x", "--values")


def test_relu_cli_bad_input_is_one_line(tmp_path, capsys):
    assert main(["relu", "pt1", "--values", "1.0,9", "--out", str(tmp_path / "a")]) == 2
    assert "theta" in capsys.readouterr().err
    assert main(["relu", "pt1", "--values", "1.0,1.2", "--llc-values", "1.3", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "--llc-values" in err and err.count("\n") == 1
    assert not (tmp_path / "b").exists()  # refused before anything ran


def test_relu_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["relu", "pt1", "--values", "1.3,pi/2", "--trials", "2", "--n", "300", "--tune", "40", "--draws", "30",
            "--llc-values", "none", "--no-coarse-grain", "--no-progress", "--out", str(out),
            "--smc-particles", "32", "--smc-repeats", "1", "--smc-mcmc-steps", "1"]  # SMC at π/2 (the default ∩ grid)
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "dropped trials" in text and "SMC − chains (paired)" in text
    report = (out / "report" / "report.md").read_text()
    assert "## Posterior mass by SMC (2 datasets × 1 runs" in report and "## Shares against ε" in report


def test_relu_sweep_over_n_gets_the_occupancy_analysis(tmp_path):
    """A ReLU sweep over n (fixed truth) is analysed like a TMS sweep: every draw labelled by the PT1
    rule, shares pooled over datasets and chains equal the label counts, the phase order is the
    experiment's own, and the report names where one phase overtakes the other (or that none does)."""
    from tms_bayes.analysis.occupancy import empirical_occupancy, sweep_labels
    from tms_bayes.analysis.relu_phases import classify_relu, relu_sweep_labels
    from tms_bayes.experiments.relu import relu_sweep_report
    from tms_bayes.inference.sweep import SweepSettings, run_sweep
    from tms_bayes.models.relu import pt1_truth

    sw = run_sweep(SweepSettings(model="relu-pt1", theta=1.26, n=(100, 300), seeds=2, chains=2, tune=40, draws=25), tmp_path / "sw",
                   progress=False, log=lambda *_: None)
    labels = relu_sweep_labels(sw)
    assert labels.label.dims == ("n", "seed", "chain", "draw") and labels.attrs["phases"] == ["degenerate", "non-degenerate", "neither"]
    post = sw.load(300, 1).posterior
    truth = pt1_truth(1.26)
    np.testing.assert_array_equal(labels.label.sel(n=300, seed=1).values, classify_relu("pt1", post.w.values, post.q.values, truth=(truth.w, truth.q)))
    occ = empirical_occupancy(labels, n_boot=50)
    assert list(occ.phase.values) == ["degenerate", "non-degenerate", "neither"]
    for n in (100, 300):
        counts = {p: float((labels.label.sel(n=n).values == p).mean()) for p in occ.phase.values}
        for p, share in counts.items():
            assert float(occ.share.sel(n=n, phase=p)) == pytest.approx(share)
    with pytest.raises(ValueError, match="relu_sweep_labels"):
        sweep_labels(sw)
    rep = relu_sweep_report(sw.out, tmp_path / "report", n_boot=50)
    assert set(rep["files"]) == {"labels", "occupancy", "csv", "png", "report"}
    text = (tmp_path / "report" / "report.md").read_text()
    assert "pt1(theta=1.26)" in text and "degenerate" in text
