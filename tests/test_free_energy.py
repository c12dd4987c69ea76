"""Free energies, theoretical occupancy and crossovers (SPEC 2)."""

import math

import numpy as np
import pytest

from tms_bayes.theory import critical_points, crossover, free_energy, phase_free_energies, theoretical_occupancy, winner_changes


@pytest.fixture(scope="module")
def cat6():
    return critical_points(6)


def test_crossover_5_to_6_is_601(cat6):
    """SPEC 2: n_crit(5 → 6) ≈ 601 at c = 6 (the paper observes the MCMC crossover in 600-700)."""
    n = crossover(cat6, "5", "6")
    assert n == pytest.approx(601.0, abs=0.5)
    F = phase_free_energies(cat6, ["5", "6"], [n]).isel(n=0)
    assert float(F.sel(phase="5") - F.sel(phase="6")) == pytest.approx(0.0, abs=1e-9)


def test_crossover_equation_and_order(cat6):
    for a, b in [("5", "5+"), ("5+", "6")]:
        n = crossover(cat6, a, b)
        r = cat6.sel(phase=[a, b])
        g = n * float(r.loss[0] - r.loss[1]) + math.log(n) * float(r.lambda_[0] - r.lambda_[1]) + float(r.c_alpha[0] - r.c_alpha[1])
        assert g == pytest.approx(0.0, abs=1e-8)
    # equal λ, 4+ has the lower L: F_4+ − F_4 = −n/144 + 1/288 < 0 for every n ≥ 1
    assert math.isnan(crossover(cat6, "4+", "4", lambdas={"4+": 3.0, "4": 3.0}))
    with pytest.raises(ValueError, match="must not repeat"):
        crossover(cat6, "5+", "5+")


def test_free_energy_formula():
    assert free_energy(100.0, 0.05, 8.5, 6.0) == pytest.approx(100 * 0.05 + 8.5 * math.log(100) + 6.0)
    with pytest.raises(ValueError, match="n must be"):
        free_energy(0, 0.05, 8.5, 6.0)


def test_occupancy_is_a_distribution_and_follows_free_energy(cat6):
    n = np.arange(100, 2001, 50)
    occ = theoretical_occupancy(cat6, ["5", "5+", "6"], n)
    np.testing.assert_allclose(occ.sum("phase"), 1.0, rtol=1e-12)
    assert float(occ.sel(n=100, phase="5")) > 0.99
    assert float(occ.sel(n=2000, phase="6")) > 0.99
    assert float(occ.sel(n=600, phase="5")) == pytest.approx(float(occ.sel(n=600, phase="6")), abs=0.02)
    changes = winner_changes(occ, cat6)
    assert [(x["from"], x["to"]) for x in changes] == [("5", "6")]
    assert occ.attrs["formula"].startswith("exp(-F_a)")


def test_lambda_estimates_fill_unknowns(cat6):
    with pytest.raises(ValueError, match="λ of phase '4\\+' is unknown"):
        theoretical_occupancy(cat6, ["4+", "5"], [100])
    occ = theoretical_occupancy(cat6, ["4+", "5"], [100, 1000], lambdas={"4+": 6.0})
    assert float(occ.lambda_.sel(phase="4+")) == 6.0


@pytest.mark.parametrize(
    "phases,n,match",
    [
        (["5", "7"], [100], "unknown phase '7'"),
        (["5", "5x"], [100], "not of the form"),
        ([], [100], "at least one phase"),
        (["5", "5"], [100], "must not repeat"),
        (["5", "6"], [0, 100], "sample sizes > 0"),
        (["5", "6"], [np.nan], "sample sizes > 0"),
    ],
)
def test_bad_input(cat6, phases, n, match):
    with pytest.raises(ValueError, match=match):
        theoretical_occupancy(cat6, phases, n)


def test_phases_as_comma_string_and_unicode_minus(cat6):
    occ = theoretical_occupancy(cat6, "5,5+,6", [700])
    assert list(occ.phase.values) == ["5", "5+", "6"]
    F = phase_free_energies(cat6, ["4++−"], [500], lambdas={"4++−": 7.0})
    assert list(F.phase.values) == ["4++-"]


def test_agreement_verdicts_on_synthetic_shares():
    """Log-odds agreement between SMC mass and a theory, per dataset and paired: a theory equal to the
    truth agrees, one shifted by 2 nats disagrees, and an n where the 5-gon holds < 20 effective
    particles is not comparable."""
    import xarray as xr

    from tms_bayes.analysis.free_energy import agreement

    rng = np.random.default_rng(0)
    n, S = np.array([100, 200, 300]), 4
    true_dF = np.array([-1.0, 0.5, 3.0])  # F5 - F6
    dF = true_dF[:, None] + rng.normal(0, 0.1, (3, S))
    p6 = 1 / (1 + np.exp(-dF))
    share = np.stack([1 - p6, p6], -1)
    ess = np.stack([share[..., 0] * 1000, share[..., 1] * 1000], -1)
    ess[2, 0, 0] = 5.0
    occ = xr.Dataset({"share_seed": (("n", "seed", "phase"), share), "phase_ess": (("n", "seed", "phase"), ess)},
                     coords={"n": n, "seed": np.arange(S), "phase": ["5", "6"]})
    good = xr.DataArray(np.repeat(true_dF[:, None], S, 1), dims=("n", "seed"), coords={"n": n, "seed": np.arange(S)})
    ag = agreement(occ, good)
    assert list(ag.verdict.values) == ["agree", "agree", "not comparable"]
    np.testing.assert_allclose(ag.smc_dF.values, dF.mean(1), atol=1e-12)
    assert list(agreement(occ, good + 2.0).verdict.values[:2]) == ["disagree", "disagree"]
    # chains on the same datasets: equal to SMC where mixed -> agree; shifted by 1 nat -> disagree; unmixed flagged
    cshare = share.copy()
    p6c = 1 / (1 + np.exp(-(dF[1] + 1.0)))
    cshare[1] = np.stack([1 - p6c, p6c], -1)
    chains = xr.Dataset({"share": (("n", "phase"), cshare.mean(1)), "share_seed": (("n", "seed", "phase"), cshare),
                         "mixed": ("n", [True, True, False])}, coords={"n": n, "seed": np.arange(S), "phase": ["5", "6"]})
    ag = agreement(occ, good, chains_occ=chains)
    assert list(ag.chains_verdict.values) == ["agree", "disagree", "unmixed"]
    assert float(ag.chains_minus_smc[1]) == pytest.approx(1.0) and float(ag.chains_minus_smc[0]) == pytest.approx(0.0, abs=1e-12)


def _log_odds_fixture(dF, S=4):
    import xarray as xr

    n = np.arange(100, 100 * (dF.shape[0] + 1), 100)
    return xr.DataArray(dF, dims=("n", "seed"), coords={"n": n, "seed": np.arange(S)})


def test_log_odds_crossover_per_dataset_and_min_max():
    """ΔF = F5 − F6 rising linearly through 0 at n = 250 + 10·j on dataset j: each dataset's crossover is
    recovered exactly (linear interpolation), the point is the mean curve's crossing (265), and with 4
    datasets the interval is their min–max; a dataset that never crosses is counted, not averaged in."""
    from tms_bayes.analysis.free_energy import log_odds_crossover

    n = np.arange(100, 700, 100, dtype=float)
    dF = np.stack([(n - (250 + 10 * j)) / 100 for j in range(4)], 1)
    c = log_odds_crossover(_log_odds_fixture(dF))
    np.testing.assert_allclose(c["per_dataset"], [250, 260, 270, 280])
    assert c["n_crit"] == pytest.approx(265) and (c["lower"], c["upper"]) == (250, 280) and "min–max" in c["interval"]
    dF[:, 3] = -np.inf  # dataset 3: the 6-gon never holds a particle
    c = log_odds_crossover(_log_odds_fixture(dF))
    assert c["fraction_crossing"] == 0.75 and c["upper"] == 270 and np.isnan(c["per_dataset"][3])


def test_log_odds_crossover_t_interval_with_many_datasets():
    from scipy import stats

    from tms_bayes.analysis.free_energy import log_odds_crossover

    n = np.arange(100, 700, 100, dtype=float)
    centres = 300 + 10 * np.arange(8)
    dF = np.stack([(n - c) / 100 for c in centres], 1)
    c = log_odds_crossover(_log_odds_fixture(dF, S=8))
    half = stats.t.ppf(0.975, 7) * centres.std(ddof=1) / np.sqrt(8)
    assert (c["lower"], c["upper"]) == pytest.approx((centres.mean() - half, centres.mean() + half)) and "t-interval" in c["interval"]


def test_repeat_spread_is_the_standard_deviation_of_run_log_odds():
    """Independent SMC runs on one dataset: ΔF per run from the weights, its SD over runs."""
    import xarray as xr

    from tms_bayes.analysis.free_energy import repeat_spread

    p6 = np.array([[0.2, 0.3, 0.25], [0.6, 0.7, 0.5]])  # (n, run): weight on 6; the rest on 5
    lab = np.array(["5", "6"])[None, None, :].repeat(2, 0).repeat(3, 1)
    logw = np.log(np.stack([1 - p6, p6], -1))
    ds = xr.Dataset({"label": (("n", "run", "particle"), lab), "log_weight": (("n", "run", "particle"), logw)},
                    coords={"n": [100, 200], "run": [0, 1, 2], "particle": [0, 1]})
    sp = repeat_spread(ds)
    expect = np.log(p6) - np.log(1 - p6)
    np.testing.assert_allclose(sp.dF.values, expect)
    np.testing.assert_allclose(sp.sd.values, expect.std(1, ddof=1))


def test_lambda_from_growth_uses_the_energy_scale():
    """F_n(W_α) = n_eff L + λ log n + c with n_eff = n/2 (σ = 1): λ = 3 comes back only with n_eff; with n
    in its place G_n gains −n L/2, whose slope on log n swamps λ (negative here, as the σ = 1 run measured)."""
    import xarray as xr

    from tms_bayes.analysis.free_energy import lambda_from_growth

    n = np.array([100, 200, 400, 800, 1600], dtype=float)
    L, lam, S = 0.05, 3.0, 3
    F = (n / 2 * L + lam * np.log(n) + 1.0)[:, None, None] + np.zeros((1, S, 1))
    coords = {"n": n, "seed": np.arange(S), "phase": ["6"]}
    F_phase = xr.DataArray(F, dims=("n", "seed", "phase"), coords=coords)
    loss_min = xr.full_like(F_phase, L)
    occ = xr.Dataset({"phase_ess": xr.full_like(F_phase, 500.0)})
    g = lambda_from_growth(F_phase, loss_min, occ, ["6"], n_eff=n / 2)
    assert float(g["lambda"].sel(phase="6")) == pytest.approx(lam, abs=1e-9)
    assert float(lambda_from_growth(F_phase, loss_min, occ, ["6"])["lambda"].sel(phase="6")) < 0


def test_theory_crossover_interval_follows_sigma(cat6):
    """n_eff = nβ/(2σ²): σ = 1 halves the energy, so the paper's 601 becomes 1202 (SPEC 2)."""
    from tms_bayes.analysis.occupancy import theory_crossover_interval

    half = theory_crossover_interval(cat6, "5", "6")
    one = theory_crossover_interval(cat6, "5", "6", sigma=1.0)
    assert half["n_crit"] == pytest.approx(601, abs=1) and one["n_crit"] == pytest.approx(2 * half["n_crit"], rel=1e-6)
    assert one["lower"] < one["n_crit"] < one["upper"]
