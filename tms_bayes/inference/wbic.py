"""Sampling at a chosen temperature β with the compile-once NUTS engine (for WBIC, Watanabe 2013).

WBIC = E_β[n L_n(w)] at β = 1/log n, n L_n(w) = −Σ_k log p(x_k | w) (see
:mod:`tms_bayes.analysis.criteria`).  :func:`sample_tempered` samples a model at any β — the model's
``beta`` data container is an argument of the compiled density, so every temperature reuses one
program — and returns an InferenceData with the pointwise log-likelihood;
:func:`tms_bayes.experiments.wbic.model_wbic` runs β₁ = 1/log n and β₂ = a/log n and returns WBIC with
Watanabe's two-temperature λ̂.

The model must declare its data as one observed variable with ``mask`` and ``beta`` containers, as
every builder in :mod:`tms_bayes.models` does.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from .. import __version__, _validate

__all__ = ["sample_tempered", "selected_rows"]


def selected_rows(cm) -> tuple[int, np.ndarray]:
    """(n, indices) of the rows the compiled model's ``mask`` data container selects."""
    if "mask" not in cm.data:
        raise ValueError(
            "this model has no 'mask' data container; build it with the tms_bayes.models builders"
        )
    mask = np.asarray(cm.data["mask"], dtype=float)
    keep = np.flatnonzero(mask > 0.5)
    return len(keep), keep


def sample_tempered(
    model,
    beta: float,
    *,
    chains: int = 4,
    tune: int = 500,
    draws: int = 500,
    seed: int = 0,
    progress: bool = False,
    compiled=None,
):
    """NUTS on ``model`` with its likelihood tempered at ``beta`` (overriding the model's own β).

    Returns an ``az.InferenceData``: posterior (free variables in their own space, and Deterministics),
    sample_stats, and log_likelihood ℓ_k = log p(x_k | w) for the rows the mask selects, untempered;
    ``attrs['beta_used']``.  Chains start from the prior scale N(0, 1) in the unconstrained space.
    ``compiled``: (CompiledModel, ChainSampler) from an earlier call on the same model, to reuse its
    compilation."""
    import arviz as az

    from .._jax import jax, jnp
    from .compile import compile_model
    from .nuts import ChainSampler, NutsSettings, stack_data

    beta = _validate.positive("beta", beta)
    chains = _validate.integer("chains", chains, minimum=1)
    seed = _validate.integer("seed", seed, minimum=0)
    cm, sampler = compiled if compiled is not None else (None, None)
    if cm is None:
        cm = compile_model(model)
    if cm.observed_name is None or "beta" not in cm.data:
        raise ValueError(
            "sample_tempered needs a model with one observed variable and a 'beta' data container "
            "(the tms_bayes.models builders)"
        )
    if sampler is None:
        sampler = ChainSampler(cm, NutsSettings(tune=tune, draws=draws, chunk=min(100, draws)), chains)
    n, keep = selected_rows(cm)
    data = cm.with_data(beta=beta)
    rng = np.random.default_rng([seed, 17])
    init = jnp.asarray(rng.normal(size=(chains, cm.dim)))
    from tqdm.auto import tqdm

    bar = tqdm(
        total=sampler.settings.tune + sampler.settings.draws,
        desc=f"NUTS β={beta:.4g}",
        unit="step",
        leave=False,
        disable=not progress,
    )
    t0 = time.perf_counter()
    draws_, _ = sampler.run(jax.random.key(int(rng.integers(2**31))), init, stack_data(data, chains), bar)
    bar.close()
    posterior, ell = cm.posterior(draws_["position"], data)
    ell = ell[..., keep]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = az.from_dict(
            posterior=posterior,
            sample_stats=sampler.stats(draws_),
            log_likelihood={cm.observed_name: ell},
            dims={cm.observed_name: ["obs"]},
        )
    divergent = int(np.sum(draws_["diverging"]))
    if divergent > 0.01 * draws_["diverging"].size:
        warnings.warn(
            f"{divergent} of {draws_['diverging'].size} NUTS transitions at β = {beta:.4g} diverged: "
            "the tempered posterior has a geometry NUTS does not explore fully (e.g. a cross of ridges), "
            "so expectations and their Monte Carlo errors are unreliable; raise target accept or check "
            "against another method",
            RuntimeWarning,
            stacklevel=2,
        )
    attrs = {
        "beta_used": beta,
        "n": n,
        "seed": seed,
        "divergences": divergent,
        "sampling_time_s": time.perf_counter() - t0,
        "tms_bayes_version": __version__,
    }
    for g in idata.groups():
        getattr(idata, g).attrs.update(attrs)
    idata.compiled = (cm, sampler)
    return idata
