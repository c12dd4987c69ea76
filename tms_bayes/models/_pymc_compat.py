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
"""

from __future__ import annotations

__all__ = ["patch_blackjax_sampler"]


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
    adapt = blackjax.window_adaptation(algorithm=algorithm, logdensity_fn=logp_fn, target_acceptance_rate=target_accept,
                                       adaptation_info_fn=get_filter_adapt_info_fn(), **adaptation_kwargs)
    (state, params), _ = adapt.run(seed, init_position, num_steps=tune)
    kernel = algorithm(logp_fn, **params).step

    def one_step(state, key):
        state, info = kernel(key, state)
        stats = {"diverging": info.is_divergent, "energy": info.energy, "tree_depth": info.num_trajectory_expansions,
                 "n_steps": info.num_integration_steps, "acceptance_rate": info.acceptance_rate, "lp": state.logdensity}
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
