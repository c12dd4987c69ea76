"""Every PyMC NUTS backend on our models (issue: PyMC-native models): pm.sample with PyMC's default
NUTS, numpyro, blackjax and nutpie — and our compile-once engine — recover the exact posterior mean of
a conjugate model within Monte Carlo error, and all four run on the TMS model."""

import numpy as np
import pytest

pm = pytest.importorskip("pymc")

BACKENDS = ["pymc", "numpyro", "blackjax", "nutpie"]


@pytest.fixture(scope="module")
def regression():
    from tms_bayes.models.known import known_data, regression_model

    data, _ = known_data("regression", 40, seed=3, d=3)
    X, y = data["X"], data["y"]
    cov = np.linalg.inv(X.T @ X + np.eye(3))  # prior N(0, I), unit noise: the exact Gaussian posterior
    return regression_model(X, y), cov @ X.T @ y, np.sqrt(np.diag(cov))


def _posterior_mean_check(draws, exact, sd):
    """|mean − exact| ≤ 4 MCSE per coordinate (MCSE from ArviZ), and the spread matches the exact sd."""
    import arviz as az

    idata = az.from_dict(posterior={"w": draws})
    mcse = az.mcse(idata, var_names=["w"]).w.values
    mean = draws.reshape(-1, draws.shape[-1]).mean(0)
    assert np.all(np.abs(mean - exact) <= 4 * mcse + 1e-12), (mean, exact, mcse)
    np.testing.assert_allclose(draws.reshape(-1, draws.shape[-1]).std(0), sd, rtol=0.15)


@pytest.mark.parametrize("sampler", BACKENDS)
def test_pm_sample_backend_recovers_the_exact_posterior(regression, sampler):
    if sampler == "nutpie":
        pytest.importorskip("nutpie")
    from tms_bayes._jax import jax

    model, exact, sd = regression
    kwargs = {"cores": 1} if sampler == "pymc" else {}
    if sampler == "blackjax" and jax.local_device_count() < 2:  # PyMC pmaps blackjax chains, one device
        # each: JAX started before pymc.sampling.jax raised the CPU device count (test order) — vectorize
        kwargs["nuts_sampler_kwargs"] = {"chain_method": "vectorized"}
    with model:
        idata = pm.sample(draws=600, tune=400, chains=2, nuts_sampler=sampler, random_seed=11, progressbar=False,
                          compute_convergence_checks=False, **kwargs)
    _posterior_mean_check(idata.posterior.w.values, exact, sd)


def test_our_engine_recovers_the_exact_posterior(regression):
    from tms_bayes._jax import jax, jnp
    from tms_bayes.inference.compile import compile_model
    from tms_bayes.inference.nuts import ChainSampler, NutsSettings, stack_data

    model, exact, sd = regression
    cm = compile_model(model)
    sampler = ChainSampler(cm, NutsSettings(tune=400, draws=600), 2)
    draws, _ = sampler.run(jax.random.key(11), jnp.zeros((2, cm.dim)), stack_data(cm.data, 2))
    _posterior_mean_check(np.asarray(cm.unravel(draws["position"])["w"]), exact, sd)


@pytest.mark.slow
@pytest.mark.parametrize("sampler", BACKENDS)
def test_pm_sample_backend_runs_on_the_tms_model(sampler):
    """Tiny draws: every backend samples the TMS posterior and records L_n (the sweep's invariant).
    Slow (≈ 40 s for the four, mostly compiling): the default suite keeps its 15-minute budget."""
    if sampler == "nutpie":
        pytest.importorskip("nutpie")
    from tms_bayes.models.data import tms_inputs
    from tms_bayes.models.tms import tms_model

    with tms_model(tms_inputs(60, 6, 0)):
        idata = pm.sample(draws=30, tune=30, chains=1, nuts_sampler=sampler, random_seed=2, progressbar=False,
                          compute_convergence_checks=False, **({"cores": 1} if sampler == "pymc" else {}))
    assert idata.posterior.W.shape == (1, 30, 2, 6)
    L = idata.posterior.L_n.values
    assert np.all(np.isfinite(L)) and 0 < L.mean() < 2.0  # below the zero model's E‖x‖² = c/3 = 2
