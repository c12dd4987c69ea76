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
