"""λ̂ estimation (SPEC 3) on models with known λ, and its diagnostics.

Tolerances: 4 reported standard errors plus, where the reference is the asymptotic λ, a stated
systematic allowance for finite n (the estimator's bias at finite n, β = 1/log n and γ is not covered
by its standard error).  For normal crossings the reference is the exact finite-n value on the same
dataset (quadrature, ``normal_crossing_llc``), so no allowance is needed there; the quadrature itself
is checked against importance sampling and against λ = 1/(2 max k) as nβ → ∞."""

import math
import warnings

import numpy as np
import pytest

from tms_bayes.inference.llc import estimate_llc, localized_model
from tms_bayes.models.data import tms_inputs
from tms_bayes.models.known import (
    known_data,
    normal_crossing_llc,
    normal_crossing_model,
    reduced_rank_model,
    regression_model,
    rrr_learning_coefficient,
)
from tms_bayes.models.tms import tms_model, tms_population_model
from tms_bayes.theory import kgon


@pytest.fixture(scope="module")
def regression():
    data, truth = known_data("regression", 5000, seed=0, d=3)
    return regression_model(data["X"], data["y"]), truth


def test_localized_model_density(regression):
    """log p_local(w) = −nβ L_n(w) − γ/2‖w − w*‖² + const (module docstring of inference.llc)."""
    model, truth = regression
    local, nbeta = localized_model(model, truth, gamma=2.0)
    assert nbeta == pytest.approx(5000 / math.log(5000))
    lp = local.compile_logp()
    X, y = model["X"].get_value(), model["y"].get_value()
    rng = np.random.default_rng(0)
    pts = [truth["w"] + 0.05 * rng.normal(size=3) for _ in range(3)]
    expected = [-nbeta * np.mean((y - X @ w) ** 2) / 2 - np.sum((w - truth["w"]) ** 2) for w in pts]
    got = [lp({"w": w}) for w in pts]
    assert got[1] - got[0] == pytest.approx(expected[1] - expected[0], rel=1e-9)
    assert got[2] - got[0] == pytest.approx(expected[2] - expected[0], rel=1e-9)
    with pytest.raises(ValueError, match="missing"):
        localized_model(model, {}, gamma=1.0)


@pytest.mark.parametrize("sampler", ["nuts", "sgld", "rmsprop_sgld"])
def test_regular_model_lambda_is_half_dimension(regression, sampler):
    model, truth = regression
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = estimate_llc(model, truth, sampler=sampler, draws=400 if sampler == "nuts" else 2000, step_size=1e-4, seed=1)
    assert abs(res.llc_mean - 1.5) < 4 * res.llc_se + 0.075  # 5 % systematic allowance
    assert res.idata.posterior["L_n"].shape[0] == 4
    if sampler != "nuts":
        assert res.diagnostics["acceptance"] > 0.9  # ε = 1e-4 is small for this posterior (RMSProp: G ≤ 10)


def test_minibatch_sgld_runs_and_agrees(regression):
    model, truth = regression
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = estimate_llc(model, truth, sampler="sgld", draws=2000, step_size=1e-4, batch_size=500, seed=2)
    assert res.idata.posterior.attrs["batch_size"] == 500
    assert abs(res.llc_mean - 1.5) < 4 * res.llc_se + 0.15


def test_reduced_rank_regression_matches_aoyagi_watanabe():
    """RRR with N = M = H = 2, true rank 1: λ = 2 (Aoyagi & Watanabe 2005); measured 1.88 ± 0.06."""
    assert rrr_learning_coefficient(2, 2, 2, 1) == 2.0
    assert rrr_learning_coefficient(1, 1, 1, 1) == 0.5 and rrr_learning_coefficient(3, 3, 3, 1) == 4.0
    data, truth = known_data("rrr", 2000, seed=3, N=2, M=2, H=2, r=1)
    model = reduced_rank_model(data["X"], data["Y"], H=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = estimate_llc(model, truth, sampler="nuts", draws=300, tune=200, refine=True)
    assert abs(res.llc_mean - 2.0) < 4 * res.llc_se + 0.1


PATTERNS = [(1, 2), (1, 3), (2, 3)]


def test_normal_crossing_quadrature_against_importance_sampling_and_asymptote():
    data, _ = known_data("normal_crossing", 2000, seed=0, k=(1, 2))
    x, y = data["x"], data["y"]
    beta = 1 / math.log(2000)
    A, B = beta * np.sum(x * x) / 2, beta * np.sum(x * y)
    rng = np.random.default_rng(1)
    w = rng.normal(size=(2, 2_000_000))  # proposal: the localisation N(0, 1/γ), γ = 1
    f = w[0] * w[1] ** 2
    g = A * f * f - B * f
    e = np.exp(-g)
    is_est = np.sum(g * e) / np.sum(e)  # measured SE of this estimate: 1e-4 (10 repeats)
    assert normal_crossing_llc(x, y, (1, 2)) == pytest.approx(is_est, abs=5e-4)
    # With the data term switched off (y = 0) the exact value rises towards 1/(2 max k) as nβ grows;
    # the approach is slow, (nβ)^{-1/4} for (1, 2) and log-like for (2, 3).
    for k in PATTERNS:
        lam = 1 / (2 * max(k))
        values = [normal_crossing_llc(x, 0 * y, k, nbeta=nb) for nb in (1e3, 1e6, 1e9)]
        assert all(a < b for a, b in zip(values, values[1:])), (k, values)
        assert values[-1] < lam and values[-1] == pytest.approx(lam, rel=0.1)


@pytest.mark.parametrize("sampler", ["nuts", "sgld", "rmsprop_sgld"])
def test_normal_crossings_match_exact_finite_n_value(sampler):
    """Three exponent patterns, λ = 1/4, 1/6, 1/6; each estimate within 4 of its standard errors of
    the exact value on its dataset (n = 2000).  NUTS needs target_accept = 0.99: the localised
    posterior has funnel-shaped arms along the axes, and at 0.8 it is biased low by ~1.5 SE."""
    for i, k in enumerate(PATTERNS):
        data, truth = known_data("normal_crossing", 2000, seed=i, k=k)
        exact = normal_crossing_llc(data["x"], data["y"], k)
        model = normal_crossing_model(data["x"], data["y"], k)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if sampler == "nuts":
                res = estimate_llc(model, truth, draws=1000, target_accept=0.99, seed=i)
            else:  # RMSProp's G = 1/(0.1 + √V) ≤ 10 multiplies the step: ε 10× smaller
                eps = 1e-3 if sampler == "sgld" else 1e-4
                res = estimate_llc(model, truth, sampler=sampler, draws=20000, step_size=eps, seed=i)
        assert abs(res.llc_mean - exact) < 4 * res.llc_se, (k, res.llc_mean, res.llc_se, exact)
        assert res.llc_se < 0.2 * exact  # the test has power: the SE resolves the bias of λ̂ vs 1/(2 max k)


def test_tms_lambda_hat_at_large_n_matches_theory():
    """Population TMS posterior (closed-form L, no dataset noise) at n = 1e7 (nβ = 6.2e5), γ = 1:
    λ̂(5-gon) ≈ 7, λ̂(5+) ≈ 8.5, λ̂(6-gon) ≈ 8.5.  Tolerance 4 SE + 0.2: the systematic part is the
    finite-nβ bias, measured to shrink from ≤ 0.2 at n = 1e5 to ≤ 0.1 at n = 1e7.  Every draw keeps
    its k-gon label (leak 0) — and the 5-gon's value is reported as metastable: its critical set is
    left without a barrier into 5+ (theory.metastable_exit), which these chains did not find."""
    model = tms_population_model(6, n=10_000_000)
    est = {}
    for name, (k, s, lam) in {"5": (5, 0, 7.0), "5+": (5, 1, 8.5), "6": (6, 0, 8.5)}.items():
        pt = kgon(k, 6, sigma=s)
        res = estimate_llc(model, {"W": pt.W, "b": pt.b}, gamma=1.0, draws=400, tune=300, seed=0)
        assert abs(res.llc_mean - lam) < 4 * res.llc_se + 0.2, (name, res.llc_mean, res.llc_se)
        assert res.diagnostics["leak"] == 0.0 and not res.warnings
        est[name] = res
    assert est["5"].llc_mean + 3 * est["5"].llc_se < est["6"].llc_mean
    assert est["5"].idata.posterior.attrs["metastable_exit"] == "5+"
    assert est["6"].idata.posterior.attrs["metastable_exit"] == "" == est["5+"].idata.posterior.attrs["metastable_exit"]


@pytest.mark.slow  # 36 s: with the slow set, to keep the default suite under 15 minutes
def test_phase_confinement_stops_the_leak_without_moving_lambda_hat():
    """Population TMS at n = 5000 (nβ = 587), 5-gon, γ = 1: unconfined, the chains leave for the 6-gon
    (measured leak 1.00, λ̂ = −2.9: a mixture of phases, flagged); confined (κ = 100 and 1000 on the dead
    column's weights and bias) no draw leaves and λ̂ does not depend on κ (measured 8.21 ± 0.14 and
    8.14 ± 0.14; above 7 by the finite-nβ bias).  At n = 1e5 nothing leaks either way, and confinement
    leaves λ̂ where it was (measured 7.19 ± 0.10 unconfined, 7.01 ± 0.11 at κ = 100): within 4 SE."""
    pt = kgon(5, 6)
    w_star = {"W": pt.W, "b": pt.b}
    small = tms_population_model(6, n=5000)
    with pytest.warns(RuntimeWarning, match=r"left phase 5 .draws: 6 .*left for 5\+ without a barrier"):
        free = estimate_llc(small, w_star, gamma=1.0, draws=400, tune=300, seed=0)
    assert free.diagnostics["leak"] > 0.9
    confined = [estimate_llc(small, w_star, gamma=1.0, draws=400, tune=300, seed=0, confine=k) for k in (100.0, 1000.0)]
    for res in confined:
        assert res.diagnostics["leak"] == 0.0 and not res.warnings and res.idata.posterior.attrs["confine"] > 0
    a, b = confined
    assert abs(a.llc_mean - b.llc_mean) < 4 * math.hypot(a.llc_se, b.llc_se)
    large = tms_population_model(6, n=100_000)
    free, conf = (estimate_llc(large, w_star, gamma=1.0, draws=400, tune=300, seed=0, confine=k) for k in (None, 100.0))
    assert free.diagnostics["leak"] == 0.0 == conf.diagnostics["leak"]
    assert abs(free.llc_mean - conf.llc_mean) < 4 * math.hypot(free.llc_se, conf.llc_se)
    assert abs(conf.llc_mean - 7.0) < 4 * conf.llc_se + 0.2
    # SGLD sees the same wall (a per-coordinate localisation): measured leak 0.32 -> 0, λ̂ 7.25 ± 1.83 -> 8.67 ± 0.21
    free, conf = (estimate_llc(small, w_star, sampler="sgld", step_size=1e-3, draws=3000, seed=0, confine=k) for k in (None, 100.0))
    assert free.diagnostics["leak"] > 0.1 and conf.diagnostics["leak"] == 0.0
    assert estimate_llc(small, w_star, draws=100, tune=100, confine=0.0).idata.posterior.attrs["confine"] == 0.0  # κ = 0: off
    # the 4-gon family sits at b = 0, where a dead column's weights are not flat: only its bias is walled
    from tms_bayes.inference.llc import tms_exit_walls

    four, five = tms_exit_walls(kgon(4, 6).W, kgon(4, 6).b), tms_exit_walls(pt.W, pt.b)
    assert not four["W"].any() and list(four["b"]) == [False] * 4 + [True] * 2
    assert five["W"][:, 5].all() and not five["W"][:, :5].any() and list(five["b"]) == [False] * 5 + [True]
    with pytest.raises(ValueError, match="confine needs a TMS model at r = 2"):
        model, truth = regression_model(np.ones((10, 1)), np.ones(10)), {"w": np.zeros(1)}
        estimate_llc(model, truth, confine=10.0)


@pytest.fixture(scope="module")
def tms5000():
    return tms_model(tms_inputs(5000, 6, seed=0))


def test_tms_ordering_of_lambda_hat(tms5000):
    """λ̂(4+) < λ̂(5) < λ̂(6) at n = 5000.  With γ = 100 (needed: at γ = 1 NUTS leaves the 5-gon basin)
    the estimates are shrunk by the localisation (measured 3.9 / 4.3 / 4.9 against 7 and 8.5): the
    ordering, not the values, is what this setting supports."""
    est = {}
    for name, (k, s) in {"4+": (4, 1), "5": (5, 0), "6": (6, 0)}.items():
        pt = kgon(k, 6, sigma=s)
        res = estimate_llc(tms5000, {"W": pt.W, "b": pt.b}, gamma=100.0, draws=300, tune=200, refine=True, seed=0)
        est[name] = res
        assert res.diagnostics["share_below_w_star"] < 0.05
    assert est["4+"].llc_mean + 2 * est["4+"].llc_se < est["5"].llc_mean
    assert est["5"].llc_mean + 2 * est["5"].llc_se < est["6"].llc_mean


def test_warns_when_w_star_is_not_a_local_minimum(tms5000):
    """With weak localisation (γ = 1) the 5-gon's chains slide to lower loss: λ̂ < 0 and most draws
    below L_n(w*) — both must be flagged, never silently reported."""
    pt = kgon(5, 6)
    with pytest.warns(RuntimeWarning, match="not a local minimum"):
        res = estimate_llc(tms5000, {"W": pt.W, "b": pt.b}, gamma=1.0, draws=200, tune=150, seed=0)
    assert res.llc_mean < 0 and res.diagnostics["share_below_w_star"] > 0.5


def test_bad_input(regression):
    model, truth = regression
    with pytest.raises(ValueError, match="sampler must be one of nuts, sgld, rmsprop_sgld"):
        estimate_llc(model, truth, sampler="hmc")
    with pytest.raises(ValueError, match="gamma must be a finite number > 0"):
        estimate_llc(model, truth, gamma=0.0)
    with pytest.raises(ValueError, match=r"w_star\['w'\] must have shape"):
        estimate_llc(model, {"w": np.zeros(5)})
    with pytest.raises(ValueError, match="batch_size must be an integer in"):
        estimate_llc(model, truth, sampler="sgld", batch_size=10**6)
    gauged = tms_model(tms_inputs(50, 6, seed=0), gauge="so2")
    point = {"gauge_rho": 1.0, "gauge_Y": np.zeros((2, 5)), "b": np.zeros(6)}
    with pytest.raises(ValueError, match="λ̂ needs the TMS model in its own weights W"):
        estimate_llc(gauged, point)
    with pytest.raises(ValueError, match="λ̂ needs the TMS model in its own weights W"):
        localized_model(gauged, point)


def test_calibration_grid_and_plot(regression):
    """The γ × ε grid: λ̂ shrinks under strong localisation, a too-large ε diverges and is flagged."""
    from tms_bayes.analysis.plots import llc_calibration
    from tms_bayes.inference.llc import calibrate_llc

    model, truth = regression
    cal = calibrate_llc(model, truth, gammas=[1.0, 1e4], step_sizes=[1e-4, 1e-2], draws=1000, reference=1.5, progress=False)
    assert cal.llc_mean.dims == ("gamma", "step_size") and cal.attrs["sampler"] == "sgld" and cal.attrs["reference_lambda"] == 1.5
    ok = cal.sel(step_size=1e-4)
    assert ok.llc_mean.sel(gamma=1e4) < 0.2 < 1.0 < ok.llc_mean.sel(gamma=1.0)  # measured 0.10 and 1.33
    assert np.isnan(cal.llc_mean.sel(step_size=1e-2)).all() and (cal.n_warnings.sel(step_size=1e-2) > 0).all()
    assert len(llc_calibration(cal).axes) == 2


def test_llc_command_validates_before_any_work(capsys):
    """`tms-bayes llc` builds its settings (experiments.llc_catalogue.LlcSettings) first: bad input is one
    line and exit 2 without sampling."""
    from tms_bayes.cli import main
    from tms_bayes.experiments.llc_catalogue import LlcSettings

    assert main(["llc", "--phase", "5,9"]) == 2
    assert "unknown phase '9' at c=6" in capsys.readouterr().err
    assert main(["llc", "--batch-size", "10"]) == 2
    assert "needs data='empirical'" in capsys.readouterr().err
    from tms_bayes.theory import critical_points

    assert LlcSettings(phases=("all",)).phases == tuple(critical_points(6).phase.values)  # 'all': the catalogue, in its order


def test_llc_command_confines_by_default_and_says_metastable(tmp_path, capsys):
    """`tms-bayes llc --phase 5,6 --n 5000`: confined by default (κ = 100), no 5-gon draw leaves (without
    confinement all do: test above); the 5-gon's value is marked METASTABLE (exit to 5+), the 6-gon's is
    not; the table shows the leak and llc.csv carries it."""
    import pandas as pd

    from tms_bayes.cli import main

    assert main(["llc", "--phase", "5,6", "--n", "5000", "--draws", "200", "--tune", "200", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "confinement κ=100" in out and "METASTABLE" in out
    df = pd.read_csv(tmp_path / "llc.csv", dtype={"phase": str}).set_index("phase")
    assert df.loc["5", "leak"] == 0.0 and df.loc["5", "metastable_exit"] == "5+"
    assert "METASTABLE" in df.loc["5", "notes"] and "METASTABLE" not in str(df.loc["6", "notes"])
    assert df.loc["5", "llc"] + 2 * df.loc["5", "llc_se"] < df.loc["6", "llc"]


def test_llc_standard_error_matches_the_exact_error_of_a_correlated_trace():
    """The one SE of λ̂ (sd/√ESS, used by estimate_llc and the SGD trajectories): on stationary AR(1)
    chains with φ = 0.9 and unit variance, the exact SE of the mean is √((1+φ)/(1−φ)/N); the estimate
    is within 15 % of it (ESS from 4 × 4000 steps has a relative error of a few per cent)."""
    from tms_bayes.inference.llc import llc_standard_error

    rng = np.random.default_rng(7)
    phi, chains, steps = 0.9, 4, 4000
    x = np.empty((chains, steps))
    x[:, 0] = rng.normal(size=chains)
    for t in range(1, steps):
        x[:, t] = phi * x[:, t - 1] + np.sqrt(1 - phi**2) * rng.normal(size=chains)
    mean, se, ess = llc_standard_error(x + 7.0)
    exact = np.sqrt((1 + phi) / (1 - phi) / (chains * steps))
    assert mean == pytest.approx(7.0, abs=4 * exact)
    assert se == pytest.approx(exact, rel=0.15)
    assert ess == pytest.approx(chains * steps * (1 - phi) / (1 + phi), rel=0.15)
