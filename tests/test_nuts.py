"""The one-program NUTS engine (warmup and sampling in one compiled program) against blackjax's own
window adaptation followed by blackjax NUTS transitions, key for key."""

import math

import numpy as np
import pymc as pm
import pytest

from tms_bayes._jax import jax, jnp  # before blackjax: x64 on first (see tms_bayes._jax)

import blackjax  # noqa: E402
from blackjax.adaptation.base import get_filter_adapt_info_fn  # noqa: E402
from tms_bayes.inference.compile import compile_model
from tms_bayes.inference.nuts import PAD, SAMPLE, WARMUP, ChainSampler, NutsSettings, plan, stack_data

COV = np.array([[1.0, 0.8, 0.0], [0.8, 1.0, 0.3], [0.0, 0.3, 0.5]])


def correlated_model():
    """A correlated 3-d Gaussian (so that a dense mass matrix differs from a diagonal one) with a data
    container, as the samplers expect."""
    with pm.Model() as m:
        shift = pm.Data("shift", np.array([0.5, -1.0, 2.0]))
        pm.MvNormal("x", mu=shift, cov=COV)
    return m


def reference(cm, settings, key, init, data):
    """blackjax's ``window_adaptation(nuts).run`` per chain, then ``blackjax.nuts`` steps, with the keys
    ChainSampler derives from ``key`` (one for each chain's warmup, one per chain and chunk of draws)."""
    chains = init.shape[0]
    n_chunks = math.ceil(settings.draws / settings.chunk)
    keys = jax.random.split(key, chains * (2 + n_chunks)).reshape(-1, chains)
    logdensity = cm.logdensity(data)
    out = []
    for c in range(chains):
        warm = blackjax.window_adaptation(
            blackjax.nuts,
            logdensity,
            is_mass_matrix_diagonal=settings.mass_matrix == "diag",
            target_acceptance_rate=settings.target_accept,
            adaptation_info_fn=get_filter_adapt_info_fn(),
            max_num_doublings=settings.max_tree_depth,
        )
        (state, params), _ = warm.run(keys[0, c], init[c], num_steps=settings.tune)
        kernel = blackjax.nuts(
            logdensity,
            step_size=params["step_size"],
            inverse_mass_matrix=params["inverse_mass_matrix"],
            max_num_doublings=settings.max_tree_depth,
        )
        step = jax.jit(kernel.step)
        positions = []
        for i in range(n_chunks):
            for k in jax.random.split(keys[2 + i, c], settings.chunk):
                state, _ = step(k, state)
                positions.append(np.asarray(state.position))
        out.append(np.stack(positions[: settings.draws]))
    return np.stack(out), params["step_size"]


@pytest.mark.parametrize("mass_matrix", ["diag", "dense"])
def test_one_program_reproduces_blackjax_window_adaptation_then_nuts(mass_matrix):
    """tune 60 + draws 26 in chunks of at most 20 (5 calls of 18): the windows of Stan's schedule (fast,
    slow windows ending in a new mass matrix, fast), a call that ends the warmup and starts the draws,
    and a last call with 4 padding transitions.
    Equal to rounding (1e-9 relative): a wrong adaptation step, step size or key would move every
    draw by O(1)."""
    cm = compile_model(correlated_model())
    settings = NutsSettings(tune=60, draws=26, chunk=20, mass_matrix=mass_matrix)
    chains = 2
    init = jnp.asarray(np.random.default_rng(3).normal(size=(chains, 3)) * 2.0)
    data = cm.with_data()
    draws, _ = ChainSampler(cm, settings, chains).run(jax.random.key(5), init, stack_data(data, chains))
    expected, step_size = reference(cm, settings, jax.random.key(5), init, data)
    np.testing.assert_allclose(draws["position"], expected, rtol=1e-9, atol=1e-12)
    assert draws["step_size"][-1, -1] == pytest.approx(float(step_size), rel=1e-12)
    assert np.all(draws["step_size"] == draws["step_size"][:, :1])  # frozen while sampling


def test_plan_runs_the_warmup_then_the_draws_in_even_calls_of_at_most_chunk():
    p = plan(NutsSettings(tune=60, draws=26, chunk=20))  # 86 transitions: 5 calls of 18, 4 padding
    assert p["mode"].shape == (5, 18)
    mode = p["mode"].ravel()
    assert (mode[:60] == WARMUP).all() and (mode[60:86] == SAMPLE).all() and (mode[86:] == PAD).all()
    # Stan's windows for 60 warmup transitions (blackjax's build_schedule): fast 9, slow 45, fast 6
    stage, end = p["stage"].ravel()[:60], p["end"].ravel()[:60]
    assert stage.tolist() == [0] * 9 + [1] * 45 + [0] * 6
    assert np.nonzero(end)[0].tolist() == [53]


def test_host_key_splitting_is_jax_random_split_bit_for_bit():
    from tms_bayes.inference import threefry

    assert jax.config.jax_threefry_partitionable  # JAX's default, which tms_bayes leaves alone
    for seed in (0, 5, 2**31 - 1, 2**32 + 7):
        key = jax.random.key(seed)
        data = np.asarray(jax.random.key_data(key))
        for n in (1, 3, 24, 200):
            expected = np.asarray(jax.random.key_data(jax.random.split(key, n)))
            np.testing.assert_array_equal(threefry.split(data, n), expected)
    keys = jax.random.split(jax.random.key(9), 6)  # a batch of keys: split each
    expected = np.asarray(jax.random.key_data(jax.vmap(lambda k: jax.random.split(k, 50))(keys)))
    np.testing.assert_array_equal(threefry.split(np.asarray(jax.random.key_data(keys)), 50), expected)


def test_plan_without_slow_windows_in_one_call():
    p = plan(NutsSettings(tune=10, draws=5, chunk=40))  # tune < 20: step size only; chunk > tune + draws
    assert p["mode"].shape == (1, 15)
    assert p["mode"][0].tolist() == [WARMUP] * 10 + [SAMPLE] * 5
    assert not p["stage"].any() and not p["end"].any()


def test_transition_keys_follow_the_same_scheme_for_another_prng():
    """rbg keys (JAX's split, not the NumPy threefry) and threefry keys: row c of transition t is
    split(split(key, chains·(2 + chunks))[row, c], …)[t], warm-up from row 0, chunk i of draws from row 2 + i."""
    from tms_bayes.inference.nuts import transition_keys

    settings, chains = NutsSettings(tune=7, draws=4, chunk=3), 2  # 11 transitions in 4 calls: 1 padding
    for key in (jax.random.key(4), jax.random.key(4, impl="rbg")):
        got = transition_keys(key, chains, settings)
        assert got.shape[:2] == (chains, 12)
        rows = jax.random.split(key, chains * (2 + 2)).reshape(-1, chains)
        for c in range(chains):
            expected = [*jax.random.split(rows[0, c], 7), *jax.random.split(rows[2, c], 3), *jax.random.split(rows[3, c], 3)]
            expected = np.asarray(jax.random.key_data(jnp.stack(expected[:11])))
            np.testing.assert_array_equal(got[c, :11], expected)
            np.testing.assert_array_equal(got[c, 11], expected[-1])  # padding reuses the last key


def test_a_run_takes_one_key_of_the_compiled_kind():
    cm = compile_model(correlated_model())
    sampler = ChainSampler(cm, NutsSettings(tune=5, draws=5, chunk=10), 2)
    data, init = stack_data(cm.with_data(), 2), jnp.zeros((2, 3))
    with pytest.raises(ValueError, match="one PRNG key"):
        sampler.run(jax.random.split(jax.random.key(0), 2), init, data)
    sampler.run(jax.random.key(0), init, data)
    with pytest.raises(ValueError, match="compiled for"):
        sampler.run(jax.random.key(0, impl="rbg"), init, data)
