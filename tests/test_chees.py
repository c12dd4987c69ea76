"""The "chees" chain method (ChEES-adapted jittered HMC across many chains, ``inference.nuts``) samples
the right posterior: exact means on a conjugate model, and the NUTS sweep's invariant means on TMS."""

import math

import arviz as az
import numpy as np
import pytest

from tms_bayes._jax import jax, jnp
from tms_bayes.inference.compile import as_jax, compile_model
from tms_bayes.inference.nuts import ChainSampler, NutsSettings, stack_data
from tms_bayes.models.known import regression_model


def _mcse(x) -> float:
    return float(np.ravel(az.mcse(np.asarray(x)))[0])


def test_chees_recovers_the_exact_posterior_of_a_conjugate_regression():
    """y = ⟨w, x⟩ + ε, w ~ N(0, I), σ = 1, β = 1: the posterior is N(m, P⁻¹) with P = XᵀX + I,
    m = P⁻¹Xᵀy.  32 chains × (300 + 300): every mean E w_i and the invariant E‖w‖² = ‖m‖² + tr P⁻¹
    within 4 Monte Carlo standard errors (ArviZ MCSE of the draws); variances within 15 % (the relative
    SE of a variance from ESS ≥ 1 000 draws is ≈ √(2/ESS) ≤ 4.5 %)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = X @ np.array([0.8, -0.5, 0.3]) + rng.normal(size=40)
    P = X.T @ X + np.eye(3)
    cov = np.linalg.inv(P)
    m = cov @ X.T @ y
    cm = compile_model(regression_model(X, y))
    chains = 32
    sampler = ChainSampler(cm, NutsSettings(tune=300, draws=300, chain_method="chees"), chains)
    init = jnp.asarray(rng.normal(size=(chains, cm.dim)))
    draws, _ = sampler.run(jax.random.key(1), init, stack_data(as_jax(cm.data), chains))
    w = draws["position"]  # (chain, draw, 3)
    n_steps = draws["n_steps"]
    assert np.all(n_steps == n_steps[:1])  # every chain takes the same number of leapfrog steps
    assert n_steps.std() > 0  # … jittered from one transition to the next
    for i in range(3):
        assert float(az.ess(w[..., i])) > 1000
        assert abs(w[..., i].mean() - m[i]) < 4 * _mcse(w[..., i])
        assert w[..., i].var() == pytest.approx(cov[i, i], rel=0.15)
    sq = (w**2).sum(-1)
    assert abs(sq.mean() - (m @ m + np.trace(cov))) < 4 * _mcse(sq)
    assert sampler.compilations == 2


def test_chees_sweep_matches_nuts_on_tms_invariants(tmp_path):
    """One TMS job (n = 100, SO(2) gauge) by NUTS (4 chains × 600) and by ChEES (32 chains × 300):
    E L_n and every sorted column norm's mean agree within 4 combined MCSE."""
    from tms_bayes.inference.sweep import SweepSettings, run_sweep

    means = {}
    for method, chains, draws in (("chees", 32, 300), ("sequential", 4, 600)):
        st = SweepSettings(n=(100,), seeds=1, chains=chains, tune=400, draws=draws, chain_method=method)
        post = run_sweep(st, tmp_path / method, progress=False, log=lambda *_: None).load(100, 0).posterior
        norms = np.sort(np.linalg.norm(post["W"].values, axis=-2), axis=-1)
        qs = {"L_n": post["L_n"].values, **{f"norm{k}": norms[..., k] for k in range(6)}}
        means[method] = {k: (v.mean(), _mcse(v)) for k, v in qs.items()}
    for k in means["chees"]:
        (m1, e1), (m0, e0) = means["chees"][k], means["sequential"][k]
        assert abs(m1 - m0) < 4 * math.hypot(e1, e0), (k, m1, m0, e1, e0)


def test_chees_refuses_a_single_chain_and_a_dense_mass_matrix():
    from tms_bayes.inference.sweep import SweepSettings

    cm = compile_model(regression_model(np.ones((5, 2)), np.ones(5)))
    with pytest.raises(ValueError, match="chains >= 2"):
        ChainSampler(cm, NutsSettings(chain_method="chees"), 1)
    with pytest.raises(ValueError, match="diagonal"):
        ChainSampler(cm, NutsSettings(chain_method="chees", mass_matrix="dense"), 8)
    with pytest.raises(ValueError, match="chains >= 2"):
        SweepSettings(chain_method="chees", chains=1)
    with pytest.raises(ValueError, match="mass_matrix='diag'"):
        SweepSettings(chain_method="chees", chains=16, mass_matrix="dense")
    with pytest.raises(ValueError, match="PyMC's own NUTS"):
        SweepSettings(backend="pymc", mass_matrix="dense")
