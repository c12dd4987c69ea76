"""ReLU transitions checked two ways (SPEC 5): the critical configurations from the population loss,
phases by the nearest configuration, the published protocol's sample filter and settings, and the
posterior mass per phase by SMC against well-mixed chains on the same datasets."""

import json
import math

import numpy as np
import pytest
from conftest import assert_identical_runs

from tms_bayes.analysis.relu_phases import (
    configurations,
    nearest_phase,
    phase_fractions,
    phase_mass,
    published_sample_filter,
    truth_sweep_labels,
)
from tms_bayes.experiments.relu import (
    PUBLISHED_PROTOCOL,
    ReluJob,
    ReluSMCSettings,
    run_smc_mass,
    smc_phase_mass,
)
from tms_bayes.inference.relu_smc import load_relu_smc
from tms_bayes.inference.truth_sweep import TruthSweepSettings, run_truth_sweep
from tms_bayes.models.relu import pt1_truth, pt2_truth
from tms_bayes.theory.relu_critical import (
    configuration_distance,
    population_loss,
    pt1_configurations,
    pt1_critical_estimate,
    pt2_configurations,
)


def _tuple(t):
    return (t.w, t.b, t.q, t.c)


# ---------------------------------------------------------------------------------------------
# Critical configurations (theory.relu_critical)
# ---------------------------------------------------------------------------------------------
def test_population_loss_quadrature_matches_monte_carlo():
    # the midpoint-grid quadrature against 10⁶ uniform draws (MC SE ≈ 0.3 % of the value here)
    t = pt1_truth(1.0)
    w, b, q, c = np.array([[0.1, 1.2], [0.0, 0.0]]), np.array([-0.1, -1.0]), np.array([1.8, 0.0]), 0.01
    X = np.random.default_rng(0).uniform(-1, 1, size=(1_000_000, 2))
    mc = np.mean((np.maximum(X @ w.T + b, 0) @ q + c - t(X)) ** 2)
    assert population_loss(w, b, q, c, _tuple(t), grid=400) == pytest.approx(mc, rel=0.01)
    assert population_loss(t.w, t.b, t.q, t.c, _tuple(t)) == 0.0


def test_pt1_degenerate_configuration_is_exact_at_half_pi_and_moves_below_it():
    # θ = π/2: both true nodes are (0, 1) with b = −0.3, so one node (0, 2), b = −0.6 … in effective
    # weights ŵ = |q| w = (0, 2): exact, L = 0
    half = pt1_configurations(_tuple(pt1_truth(math.pi / 2)))["degenerate"]
    assert half.loss < 1e-12
    np.testing.assert_allclose(np.sort(np.linalg.norm(half.effective, axis=1)), [0.0, 2.0], atol=1e-5)
    losses, norms = [], []
    for theta in (1.0, 1.26, 1.5):
        cfg = pt1_configurations(_tuple(pt1_truth(theta)))
        deg = cfg["degenerate"]
        assert cfg["non-degenerate"].loss == 0.0
        # a local minimum: no random small move of the live node's parameters lowers L
        rng = np.random.default_rng(1)
        for _ in range(5):
            dw, db, dq = 1e-3 * rng.normal(size=2), 1e-3 * rng.normal(), 1e-3 * rng.normal()
            w = deg.w.copy()
            w[0] += dw
            b, q = deg.b.copy(), deg.q.copy()
            b[0] += db
            q[0] += dq
            assert population_loss(w, b, q, deg.c, _tuple(pt1_truth(theta))) >= deg.loss - 1e-12
        losses.append(deg.loss)
        norms.append(np.linalg.norm(deg.effective, axis=1).max())
    assert losses[0] > losses[1] > losses[2] > 0  # the accuracy the degenerate phase gives up falls with θ
    # the moved configuration: ‖ŵ‖ = 1.10 at θ = 1 — outside the published annulus |‖ŵ‖ − 2| < 0.3
    assert norms[0] == pytest.approx(1.095, abs=0.01) and abs(norms[0] - 2) > 0.3
    assert abs(norms[2] - 2) < 0.3
    # the free-energy estimate with Δλ = 2 at n = 10⁴ wants L_deg > 0.026: nowhere on the grid
    assert pt1_critical_estimate(losses, (1.0, 1.26, 1.5), 10_000) == -math.inf
    # with Δλ = 0.1 the level is 0.2·log(1085.7)/1085.7 = 0.001288, between L(1.26) = 0.00167 and
    # L(1.5) = 0.00003: linear interpolation gives 1.26 + 0.24·0.000382/0.00164 = 1.316
    assert pt1_critical_estimate(losses, (1.0, 1.26, 1.5), 10_000, dlambda=0.1) == pytest.approx(1.316, abs=0.005)


def test_pt2_annihilation_configuration_is_the_reversed_network_at_one_and_moves_away():
    # ReLU(z) = ReLU(−z) + z and Σ q_a w_a = 0 at ϑ = 1: the reversed network (−w, −b, q, c + Σ q b)
    # computes the same function; its effective weights are −ŵ⁰
    t1 = pt2_truth(1.0)
    ann = pt2_configurations(_tuple(t1))["annihilation"]
    assert ann.exists and ann.loss < 1e-10
    assert configuration_distance(ann.effective, -np.abs(t1.q)[:, None] * t1.w) < 1e-4
    moved = []
    for v in (1.5, 2.0, 2.5):
        t = pt2_truth(v)
        a = pt2_configurations(_tuple(t))["annihilation"]
        assert a.exists and a.loss > 0  # still a separate local minimum, now with a loss gap
        moved.append(float(configuration_distance(a.effective, -np.abs(t.q)[:, None] * t.w)))
    # it leaves the published ε = 0.25 ball around the scaled reversed weights before ϑ = 2.0
    assert moved[0] < moved[1] < moved[2] and moved[1] > 0.25
    assert configurations("pt2", _tuple(pt2_truth(2.0))).keys() == {"non-annihilation", "annihilation"}


# ---------------------------------------------------------------------------------------------
# Nearest-configuration phases, the sample filter, shares over valid draws, SMC mass
# ---------------------------------------------------------------------------------------------
def test_nearest_phase_labels_by_distance_up_to_permutation():
    refs = {"a": np.array([[0.0, 2.0], [0.0, 0.0]]), "b": np.array([[0.5, 0.9], [-0.5, 0.9]])}
    pts = np.array(
        [
            [[0.0, 0.0], [0.1, 1.9]],  # a, nodes swapped
            [[-0.5, 0.85], [0.5, 0.95]],  # b, swapped
            [[0.25, 1.45], [-0.25, 0.45]],  # half way: tie within the margin
            [[3.0, 3.0], [-3.0, 3.0]],  # far from both
        ]
    )
    assert nearest_phase(pts, refs).tolist() == ["a", "b", "neither", "neither"]
    assert nearest_phase(pts, refs, margin=0.0, radius=100.0).tolist()[:2] == ["a", "b"]
    assert nearest_phase(pts, refs, margin=0.0, radius=100.0)[3] in ("a", "b")
    with pytest.raises(ValueError, match="margin"):
        nearest_phase(pts, refs, margin=-1)


def test_published_sample_filter_drops_draws_with_both_nodes_pointing_down():
    w = np.array([[[0.0, -2.0], [0.0, -1.5]], [[0.0, -2.0], [0.0, 1.0]], [[0.0, 0.5], [0.0, 0.5]]])
    q = np.array([[1.0, 1.0], [1.0, 1.0], [-3.0, -3.0]])
    # w_{a,2}·q_a: (−2, −1.5) both ≤ −1 → dropped; (−2, 1) kept; (−1.5, −1.5) dropped
    assert published_sample_filter(w, q).tolist() == [False, True, False]
    assert published_sample_filter(np.zeros((4, 3, 2)), np.ones((4, 3))).all()  # d = 3: no filter


def test_phase_mass_weights_particles_and_bootstraps_over_datasets():
    # 1 value, 2 datasets, 2 repeats, 4 particles; phase A has weight 0.75 on dataset 0, 0.25 on dataset 1
    lab = np.array([[[["A", "A", "B", "B"]] * 2, [["A", "B", "B", "B"]] * 2]])
    w0, w1 = np.log([0.5, 0.25, 0.125, 0.125]), np.log([0.25, 0.25, 0.25, 0.25])
    # dataset 1's two repeats differ: A gets 0.25 in the first and 0.5 in the second (mean 0.375)
    w1b = np.log([0.5, 0.125, 0.25, 0.125])
    lw = np.array([[[w0, w0], [w1, w1b]]])
    m = phase_mass(lab, lw, [1.0], ["A", "B"], n_boot=200).isel(value=0)
    assert float(m.mass.sel(phase="A")) == pytest.approx((0.75 + 0.375) / 2)  # repeats averaged first
    assert float(m.lower.sel(phase="A")) == pytest.approx(0.375) and float(m.upper.sel(phase="A")) == pytest.approx(0.75)
    # SD between repeats: 0 on dataset 0, 0.25/√2 on dataset 1, averaged over datasets
    assert float(m.rep_sd.sel(phase="A")) == pytest.approx(0.25 / math.sqrt(2) / 2)
    with pytest.raises(ValueError, match="value, dataset, rep, particle"):
        phase_mass(lab[0], lw[0], [1.0], ["A", "B"])


def test_shares_count_only_valid_draws_and_drop_a_trial_the_filter_empties():
    import xarray as xr

    lab = np.array([[["degenerate", "neither", "degenerate", "non-degenerate"], ["degenerate"] * 4]])
    valid = np.array([[[True, True, False, True], [False] * 4]])
    labels = xr.Dataset(
        {
            "label": (("value", "trial", "draw"), lab),
            "L_n": (("value", "trial", "draw"), np.ones((1, 2, 4))),
            "valid": (("value", "trial", "draw"), valid),
            "kept": (("value", "trial"), np.array([[True, True]])),
        },
        coords={"value": [1.0], "trial": [0, 1], "draw": np.arange(4)},
        attrs={"experiment": "pt1"},
    )
    f = phase_fractions(labels, n_boot=20).isel(value=0)
    # trial 0: 3 valid draws, one in each phase; trial 1 has none and is not kept
    np.testing.assert_allclose(f.share.values, [1 / 3, 1 / 3, 1 / 3])
    assert int(f.kept_trials) == 1 and float(f.valid_share) == pytest.approx(3 / 8)


def test_published_protocol_fills_the_settings_left_at_their_defaults():
    job = ReluJob(TruthSweepSettings("pt1", values=(1.0, math.pi / 2)), protocol="published")
    for k, v in PUBLISHED_PROTOCOL["pt1"].items():
        assert getattr(job.sweep, k) == v
    assert job.analysis.sample_filter
    job2 = ReluJob(TruthSweepSettings("pt2", values=(1.0, 2.0), draws=100), protocol="published")
    assert job2.sweep.trials == 4 and job2.sweep.draws == 100 and job2.sweep.tune == 1000
    with pytest.raises(ValueError, match="protocol"):
        ReluJob(TruthSweepSettings("pt1"), protocol="thesis")
    with pytest.raises(ValueError, match="--smc-values"):
        ReluJob(TruthSweepSettings("pt1", values=(1.0, 1.1)), smc=ReluSMCSettings(smc_values=(1.2,)))
    with pytest.raises(ValueError, match="--smc-datasets"):
        ReluJob(TruthSweepSettings("pt1", values=(1.1,), trials=2), smc=ReluSMCSettings(smc_datasets=3))
    # the default SMC values are the named subset, kept to the sweep's grid
    assert ReluSMCSettings().resolved_values("pt1", (1.0, 1.1)) == (1.1,)


def test_relu_smc_resumes_and_redoes_only_a_lost_run(tmp_path):
    st = TruthSweepSettings("pt1", values=(1.1, math.pi / 2), trials=2, n=100)
    smc = ReluSMCSettings(smc_values=(math.pi / 2,), smc_datasets=2, smc_repeats=1, smc_particles=32, smc_mcmc_steps=1)
    first = run_smc_mass(st, smc, tmp_path / "smc", progress=False, log=lambda *a: None)
    assert sorted(first.statuses.values()) == ["done", "done"] and first.indices == [1]
    kept, before = first.load(1, 0, 0), first.load(1, 1, 0)  # read into memory
    (tmp_path / "smc" / "smc" / "v001-t1-r0.nc").unlink()
    again = run_smc_mass(st, smc, tmp_path / "smc", progress=False, log=lambda *a: None)
    assert again.statuses == {"v001-t1-r0": "done"}  # only the lost run is redone
    assert_identical_runs(again.load(1, 0, 0), kept)
    assert_identical_runs(again.load(1, 1, 0), before)  # the same seeds give the same particles
    with pytest.raises(ValueError, match="different settings"):
        run_smc_mass(st, ReluSMCSettings(smc_values=(math.pi / 2,), smc_particles=64), tmp_path / "smc", progress=False)


# ---------------------------------------------------------------------------------------------
# The headline: SMC posterior mass and well-mixed chains agree on the same datasets
# ---------------------------------------------------------------------------------------------
def test_smc_mass_agrees_with_well_mixed_chains_on_the_same_datasets(tmp_path):
    # PT1 at θ = π/2 with n = 200 (nβ = 37.7): the tempered posterior is broad and one NUTS chain
    # crosses between the phases many times, so its share estimates the mass on its dataset.  4 datasets,
    # 2 000 draws per chain; SMC with 512 particles, 2 runs per dataset.  Paired over the datasets, the
    # mean of (SMC mass − chain share) must lie within its t interval for every phase and both
    # classifiers — at the family-wise level 95 % over the 4 free comparisons (3 shares summing to 1, 2
    # classifiers; Bonferroni: each at 1 − 0.05/4).  Measured with these seeds: |differences| ≤ 0.02,
    # 95 % half-widths 0.003–0.039, so a bias of a few hundredths in either estimator fails the test
    # (with 1 000 draws and 256 particles a nearest-configuration half-width reached 0.055: the
    # estimators' own errors, ≈ 0.03 per dataset for each, need this many draws for the 0.07 bound).
    from scipy import stats

    st = TruthSweepSettings("pt1", values=(math.pi / 2,), trials=4, n=200, tune=300, draws=2000)
    sweep = run_truth_sweep(st, tmp_path / "sweep", progress=False, log=lambda *a: None)
    smc = run_smc_mass(
        st,
        ReluSMCSettings(smc_values=(math.pi / 2,), smc_datasets=4, smc_repeats=2, smc_particles=512),
        tmp_path / "sweep" / "smc",
        progress=False,
        log=lambda *a: None,
    )
    mass = smc_phase_mass(load_relu_smc(tmp_path / "sweep" / "smc"), sweep, n_boot=500)
    shown = mass[["mass", "mcmc_share", "difference", "difference_half_width"]].to_dataframe().round(4).to_string()
    family = stats.t.ppf(1 - 0.05 / 8, 3) / stats.t.ppf(0.975, 3)  # two-sided 0.05/4 against 0.05
    assert bool((np.abs(mass.difference) <= family * mass.difference_half_width).all()), shown
    assert float(family * mass.difference_half_width.max()) < 0.07, shown  # the comparison has teeth
    # and the phases hold real mass: the nearest-configuration phases are not empty
    near = mass.sel(classifier="nearest").isel(value=0)
    assert float(near.mass.sel(phase="degenerate")) > 0.04
    assert float(near.mass.sel(phase="non-degenerate")) > 0.1
    # the chains are well mixed between phases: each chain changes phase many times
    lab = truth_sweep_labels(sweep, classifier="nearest")
    seq = lab.label.isel(value=0).values
    assert (seq[:, 1:] != seq[:, :-1]).sum(axis=1).min() > 50
    assert phase_fractions(lab, n_boot=10).share.sum("phase").values == pytest.approx(1.0)
    assert len(smc.finished()) == 8
    # SMC dataset t at a value is the sweep's trial t at that value (the pairing above rests on it)
    seeds = json.loads(sweep.load(0).posterior.attrs["data_seeds"])
    assert [smc.load(0, t, 0).posterior.attrs["data_seed"] for t in range(4)] == seeds
    assert int(mass.mcmc_switches.min()) > 50


@pytest.mark.slow
def test_published_protocol_reproduces_the_published_critical_theta(tmp_path):
    # The published result: the degenerate phase overtakes the non-degenerate one near θ_c ≈ 1.26.  On a
    # reduced grid θ ∈ {1.1, 1.34} the published protocol (8 trials on fresh datasets, n = 10 000,
    # β = 1/log n, target acceptance 0.9, trial and sample filters; ε = 0.3 annuli) puts the
    # non-degenerate phase ahead at 1.1 and the degenerate one at 1.34, so θ_c ∈ (1.1, 1.34) ∋ 1.26.
    # Measured with the full protocol (1 000 + 4 000 draws): 0.245 vs 0.019 at 1.1, 0.027 vs 0.278 at
    # 1.34, crossing at 1.26; here 300 + 300 draws per trial, to fit the test suite.
    job = ReluJob(
        TruthSweepSettings("pt1", values=(1.1, 1.34), tune=300, draws=300),
        protocol="published",
        smc=ReluSMCSettings(smc_values=()),
    )
    assert job.sweep.trials == 8 and job.sweep.target_accept == 0.9 and job.analysis.sample_filter
    sweep = run_truth_sweep(job.sweep, tmp_path / "pub", progress=False, log=lambda *a: None)
    frac = phase_fractions(truth_sweep_labels(sweep, sample_filter=True), n_boot=500)
    before, after = frac.isel(value=0), frac.isel(value=1)
    assert float(before.lower.sel(phase="non-degenerate")) > float(before.upper.sel(phase="degenerate"))
    assert float(after.lower.sel(phase="degenerate")) > float(after.upper.sel(phase="non-degenerate"))
    from tms_bayes.analysis.relu_report import transition_summary

    crit = transition_summary(frac)["critical"]
    assert 1.1 < crit < 1.34
