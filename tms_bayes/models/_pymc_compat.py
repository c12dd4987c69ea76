"""Work-arounds that make every PyMC NUTS backend run on our models with the versions we pin.

**blackjax.**  PyMC's blackjax path (``pymc.sampling.jax._blackjax_inference_loop``, PyMC ≤ 5.28.5, the
newest release) was written for blackjax ≤ 1.2 and fails with blackjax 1.7 on any model, twice over:
it passes ``progress_bar`` to ``blackjax.window_adaptation``, which now forwards unknown keywords to the
NUTS kernel (``TypeError: kernel() got an unexpected keyword argument 'progress_bar'``), and it calls
``blackjax.progress_bar.gen_scan_fn``, which is gone (``blackjax.progress_bar`` is now a function).
:func:`patch_blackjax_sampler` puts in its place :func:`_inference_loop`, the same computation written
against the blackjax we pin: Stan-style window adaptation for ``tune`` steps, then ``draws`` NUTS
transitions in one ``lax.scan``, with the sample statistics PyMC expects (no progress bar).  It is
applied when a model module of tms-bayes is imported, is idempotent, and does nothing where PyMC has no
such function.

**Posterior predictive.**  ``pm.sample_posterior_predictive`` (PyMC 5.28.5) extends ``model.observed_RVs``
in place (``observed_vars = model.observed_RVs; observed_vars += [...]``, where a name is compared with
variables, so every observed variable is appended again) whenever the trace has an ``observed_data``
group: afterwards the model lists each observed variable twice and ``model.logp()`` fails ("Cannot
convert None to a tensor variable") — so would any sampler or tms-bayes' compiler on that model.
:func:`patch_posterior_predictive` wraps it so that the model's list is restored after the call.
"""

from __future__ import annotations

__all__ = ["patch_blackjax_sampler", "patch_posterior_predictive"]


def _inference_loop(seed, init_position, logp_fn, draws, tune, target_accept, **adaptation_kwargs):
    """One chain: window adaptation, then ``draws`` transitions; returns (positions, stats) as PyMC's
    ``_blackjax_inference_loop`` does."""
    import blackjax
    import jax
    from blackjax.adaptation.base import get_filter_adapt_info_fn

    adaptation_kwargs.pop("progress_bar", None)
    name = adaptation_kwargs.pop("algorithm", "nuts")
    if name not in ("nuts", "hmc"):
        raise ValueError(f"algorithm must be 'nuts' or 'hmc', got {name!r}")
    algorithm = getattr(blackjax, name)
    adapt = blackjax.window_adaptation(
        algorithm=algorithm,
        logdensity_fn=logp_fn,
        target_acceptance_rate=target_accept,
        adaptation_info_fn=get_filter_adapt_info_fn(),
        **adaptation_kwargs,
    )
    (state, params), _ = adapt.run(seed, init_position, num_steps=tune)
    kernel = algorithm(logp_fn, **params).step

    def one_step(state, key):
        state, info = kernel(key, state)
        stats = {
            "diverging": info.is_divergent,
            "energy": info.energy,
            "tree_depth": info.num_trajectory_expansions,
            "n_steps": info.num_integration_steps,
            "acceptance_rate": info.acceptance_rate,
            "lp": state.logdensity,
        }
        return state, (state.position, stats)

    _, (samples, stats) = jax.lax.scan(one_step, state, jax.random.split(seed, draws))
    return samples, stats


_inference_loop._tms_bayes_patched = True


def patch_blackjax_sampler() -> bool:
    """Replace ``pymc.sampling.jax._blackjax_inference_loop`` (module docstring); True if replaced."""
    try:
        from pymc.sampling import jax as pm_jax
    except ImportError:  # PyMC without its JAX extras
        return False
    if not hasattr(pm_jax, "_blackjax_inference_loop"):
        return False
    pm_jax._blackjax_inference_loop = _inference_loop
    return True


def patch_posterior_predictive() -> bool:
    """Wrap ``pm.sample_posterior_predictive`` so that it leaves ``model.observed_RVs`` as it found it
    (module docstring); idempotent.  True if wrapped."""
    import functools

    import pymc as pm
    import pymc.sampling.forward as forward

    original = forward.sample_posterior_predictive
    if getattr(original, "_tms_bayes_patched", False):
        return True

    @functools.wraps(original)
    def sample_posterior_predictive(*args, **kwargs):
        model = pm.modelcontext(
            kwargs.get("model", args[1] if len(args) > 1 else None)
        )  # model: 2nd positional
        kept = model.observed_RVs
        model.observed_RVs = list(kept)  # a copy for PyMC to extend
        try:
            return original(*args, **kwargs)
        finally:
            model.observed_RVs = kept

    sample_posterior_predictive._tms_bayes_patched = True
    forward.sample_posterior_predictive = sample_posterior_predictive
    pm.sample_posterior_predictive = sample_posterior_predictive
    return True
