"""Compile-once NUTS on the JAX backend (blackjax) for a batch of chains with per-chain data.

One call of :func:`make_sampler` builds two jitted programs for a :class:`CompiledModel`:

- ``warmup(keys, init, data) -> (state, params)``: Stan-style window adaptation (step size by dual
  averaging, diagonal or dense inverse mass matrix: ``mass_matrix``), **per chain**;
- ``sample(keys, state, params, data) -> (state, draws)``: ``chunk`` NUTS transitions per chain.

Data (padded to a fixed number of rows, with a mask) and β are arguments with a leading chain
axis, so every n and every seed of a sweep reuses the same two compiled programs.

Chains are mapped either with ``jax.vmap`` ("vectorized": fast batched gradients, but chains advance
in lockstep, so a transition costs the deepest tree of the batch) or ``jax.lax.map``
("sequential": each chain builds only its own tree).  ``benchmarks/sweep_speed.py`` measures both.
Chains are also sharded across devices (``shard_map``; on CPU one device per core, see
``tms_bayes._jax``): with D devices and C chains, min(D, largest divisor of C) shards run in parallel.

The third chain method, ``"chees"``, is for many chains on an accelerator: jittered-trajectory HMC whose
step size, trajectory length and diagonal mass matrix are adapted *across* chains by ChEES (Hoffman,
Radul & Sountsov 2021: maximise the expected squared jump of the chains' centred squared distance,
ChEES = ¼ E[(‖θ' − E θ‖² − ‖θ − E θ‖²)²], by Adam on log trajectory length; step size by dual averaging
on the acceptance rate; ``blackjax.chees_adaptation``).  Every chain then takes the same number of
leapfrog steps per transition, drawn as ⌈u T/ε⌉ with u ~ U(0, 1) shared by the chains — no NUTS tree,
so a vmapped batch wastes nothing on lockstep.  All chains of one call must sample the same data (a
sweep job: the data of chain 0 are used), and the chains are not sharded (adaptation pools them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import math
import threading
import time

import blackjax
import numpy as np
from blackjax.adaptation.base import get_filter_adapt_info_fn

from .. import _validate
from .._options import CHAIN_METHODS, MASS_MATRICES
from .._jax import jax, jnp
from .compile import CompiledModel

__all__ = ["NutsSettings", "Draws", "make_sampler", "ChainSampler", "Cancelled"]

#: ChEES: initial step size and Adam's learning rate for log trajectory length (the paper's 0.025)
CHEES_STEP_SIZE, CHEES_LEARNING_RATE = 0.1, 0.025


@dataclass(frozen=True)
class NutsSettings:
    """NUTS settings.  ``devices``: how many devices to shard chains over (None: as many as divide
    the number of chains, up to ``jax.device_count()``)."""

    tune: int = 300
    draws: int = 300
    chunk: int = 50  # transitions per compiled sampling call (progress granularity)
    target_accept: float = 0.8
    max_tree_depth: int = 10
    chain_method: str = "sequential"
    devices: int | None = None
    mass_matrix: str = "diag"

    def __post_init__(self):
        _validate.integer("tune", self.tune, minimum=1)
        _validate.integer("draws", self.draws, minimum=1)
        _validate.integer("chunk", self.chunk, minimum=1)
        _validate.integer("max_tree_depth", self.max_tree_depth, minimum=1, maximum=20)
        if not 0.0 < float(self.target_accept) < 1.0:
            raise ValueError(f"target_accept must be in (0, 1), got {self.target_accept!r}")
        _validate.choice("chain_method", self.chain_method, CHAIN_METHODS)
        _validate.choice("mass_matrix", self.mass_matrix, MASS_MATRICES)
        if self.devices is not None:
            _validate.integer("devices", self.devices, minimum=1)


class Draws(NamedTuple):
    position: jax.Array  # (chain, draw, dim)
    logdensity: jax.Array
    energy: jax.Array
    n_steps: jax.Array
    tree_depth: jax.Array
    diverging: jax.Array
    acceptance_rate: jax.Array


def make_sampler(
    cm: CompiledModel, settings: NutsSettings, chains: int | None = None
) -> tuple[Callable, Callable]:
    """Return jitted (warmup, sample) functions for ``cm`` (module docstring); with ``chains`` given,
    the chains are sharded across devices."""

    def logdensity_for(data):
        return cm.logdensity(data)

    def warmup_one(key, init, data):
        warm = blackjax.window_adaptation(
            blackjax.nuts,
            logdensity_for(data),
            target_acceptance_rate=settings.target_accept,
            is_mass_matrix_diagonal=settings.mass_matrix == "diag",
            adaptation_info_fn=get_filter_adapt_info_fn(),
            max_num_doublings=settings.max_tree_depth,
        )
        (state, params), _ = warm.run(key, init, num_steps=settings.tune)
        return state, {"step_size": params["step_size"], "inverse_mass_matrix": params["inverse_mass_matrix"]}

    def sample_one(key, state, params, data):
        kernel = blackjax.nuts(logdensity_for(data), max_num_doublings=settings.max_tree_depth, **params)

        def step(state, k):
            state, info = kernel.step(k, state)
            return state, Draws(
                state.position,
                state.logdensity,
                info.energy,
                info.num_integration_steps,
                info.num_trajectory_expansions,
                info.is_divergent,
                info.acceptance_rate,
            )

        return jax.lax.scan(step, state, jax.random.split(key, settings.chunk))

    if settings.chain_method == "chees":
        return _chees_programs(cm, settings, chains)
    if settings.chain_method == "vectorized":
        warmup = jax.vmap(warmup_one)
        sample = jax.vmap(sample_one)
    else:
        warmup = lambda keys, init, data: jax.lax.map(  # noqa: E731
            lambda a: warmup_one(*a), (keys, init, data)
        )
        sample = lambda keys, state, params, data: jax.lax.map(
            lambda a: sample_one(*a), (keys, state, params, data)
        )  # noqa: E731
    if chains is not None:
        shards = shard_count(chains, settings.devices)
        if shards > 1:
            mesh = jax.make_mesh(
                (shards,),
                ("chain",),
                axis_types=(jax.sharding.AxisType.Auto,),
                devices=jax.devices()[:shards],
            )
            spec = jax.sharding.PartitionSpec("chain")
            warmup = jax.shard_map(warmup, mesh=mesh, in_specs=spec, out_specs=spec, check_vma=False)
            sample = jax.shard_map(sample, mesh=mesh, in_specs=spec, out_specs=spec, check_vma=False)
    return jax.jit(warmup), jax.jit(sample)


def _chees_programs(cm: CompiledModel, settings: NutsSettings, chains: int | None):
    """(warmup, sample) for the "chees" chain method (module docstring), with :func:`make_sampler`'s
    signatures: the adapted parameters come back with a leading chain axis like the per-chain ones."""
    import optax

    def shared(data):  # every chain of a call samples the same data
        return jax.tree.map(lambda x: x[0], data)

    def warmup(keys, init, data):
        num = init.shape[0]
        adapt = blackjax.chees_adaptation(
            cm.logdensity(shared(data)),
            num,
            jitter_generator=jax.random.uniform,
            target_acceptance_rate=settings.target_accept,
            adaptation_info_fn=get_filter_adapt_info_fn(),
            mass_matrix_estimation="diagonal",
        )
        (state, params), _ = adapt.run(
            keys[0], init, CHEES_STEP_SIZE, optax.adam(CHEES_LEARNING_RATE), num_steps=settings.tune
        )
        per_chain = {
            "step_size": params["step_size"],
            "inverse_mass_matrix": params["inverse_mass_matrix"],
            "num_steps": params["integration_steps_params"][0],
        }
        return state, jax.tree.map(lambda x: jnp.broadcast_to(x, (num, *jnp.shape(x))), per_chain)

    def sample(keys, state, params, data):
        p = jax.tree.map(lambda x: x[0], params)
        jitter, key_steps = jax.random.split(keys[0])

        def steps_fn(i, max_steps):  # ⌈u T/ε⌉, one u per transition shared by the chains
            return jnp.ceil(jax.random.uniform(jax.random.fold_in(jitter, i)) * max_steps).astype(int)

        kernel = blackjax.dynamic_hmc(
            cm.logdensity(shared(data)),
            p["step_size"],
            p["inverse_mass_matrix"],
            next_random_arg_fn=lambda i: i + 1,
            integration_steps_fn=steps_fn,
            integration_steps_params=(p["num_steps"],),
        )

        def step(state, k):
            state, info = jax.vmap(kernel.step)(jax.random.split(k, keys.shape[0]), state)
            zeros = jnp.zeros_like(info.num_integration_steps)
            return state, Draws(
                state.position,
                state.logdensity,
                info.energy,
                info.num_integration_steps,
                zeros,  # no NUTS tree: depth 0
                info.is_divergent,
                info.acceptance_rate,
            )

        state, draws = jax.lax.scan(step, state, jax.random.split(key_steps, settings.chunk))
        return state, jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), draws)  # (chain, draw, ...)

    return jax.jit(warmup), jax.jit(sample)


def shard_count(chains: int, devices: int | None = None) -> int:
    """The number of device shards for ``chains`` chains: the largest divisor of ``chains`` that is
    at most ``devices`` (default: every visible device)."""
    limit = min(devices or jax.device_count(), jax.device_count(), chains)
    return max(d for d in range(1, limit + 1) if chains % d == 0)


def stack_data(data: dict, chains: int) -> dict:
    """Give every data array a leading chain axis (the samplers map over chains)."""
    return {k: jnp.broadcast_to(jnp.asarray(v), (chains, *jnp.shape(v))) for k, v in data.items()}


class Cancelled(Exception):
    """:meth:`ChainSampler.run` stopped at a chunk boundary because its ``cancel`` event was set."""


class ChainSampler:
    """Warmup and sampling of ``chains`` chains of ``cm``, compiled (ahead of time) on the first
    :meth:`run` and reused by every later one: a sweep compiles exactly two programs.  :meth:`run` may
    be called from several threads at once (the programs are compiled once, by the first).

    ``compilations`` counts the programs compiled; ``compile_s`` the seconds spent compiling."""

    def __init__(self, cm: CompiledModel, settings: NutsSettings, chains: int):
        self.cm = cm
        self.settings = settings
        self.chains = _validate.integer("chains", chains, minimum=1)
        if settings.chain_method == "chees" and settings.mass_matrix != "diag":
            raise ValueError("chain_method='chees' adapts a diagonal mass matrix: use mass_matrix='diag'")
        if settings.chain_method == "chees" and self.chains < 2:
            raise ValueError("chain_method='chees' adapts across chains: it needs chains >= 2 (use many)")
        self.warmup, self.sample = make_sampler(cm, settings, chains=self.chains)
        self._compiled = None
        self._compiling = threading.Lock()
        self.compilations = 0
        self.compile_s = 0.0

    def _compile(self, keys, init, data):
        t0 = time.perf_counter()
        warm = self.warmup.lower(keys, init, data).compile()
        state, params = jax.eval_shape(self.warmup, keys, init, data)
        samp = self.sample.lower(keys, state, params, data).compile()
        self._compiled = (warm, samp)
        self.compilations += 2
        self.compile_s += time.perf_counter() - t0

    def run(self, key, init, data, bar=None, cancel=None) -> tuple[dict, np.ndarray, float]:
        """Warm up and sample every chain from ``init`` (chains, dim) on per-chain ``data`` (leading
        chain axis, see :func:`stack_data`).  Returns (draws: {Draws field: (chain, draw, ...)},
        adapted step sizes (chain,), sampling seconds); ``bar`` (tqdm) advances per chunk.  ``cancel``
        (a ``threading.Event``), when set, stops the run before its next compiled call (warmup, or a
        chunk of draws) with :class:`Cancelled`."""
        st = self.settings
        self.cm.check_data(data)
        n_chunks = math.ceil(st.draws / st.chunk)
        keys = jax.random.split(key, self.chains * (2 + n_chunks)).reshape(-1, self.chains)

        def go_on():
            if cancel is not None and cancel.is_set():
                raise Cancelled("sampling cancelled")

        go_on()
        with self._compiling:
            if self._compiled is None:
                self._compile(keys[0], init, data)
        warm, samp = self._compiled
        t0 = time.perf_counter()
        go_on()
        state, params = warm(keys[0], init, data)
        if bar is not None:
            bar.update(st.tune)
        chunks = []
        for i in range(n_chunks):
            go_on()
            state, draws = samp(keys[2 + i], state, params, data)
            chunks.append(jax.device_get(draws))
            if bar is not None:
                bar.update(min(st.chunk, st.draws - i * st.chunk))
        elapsed = time.perf_counter() - t0
        draws = {
            f: np.concatenate([getattr(c, f) for c in chunks], axis=1)[:, : st.draws] for f in Draws._fields
        }
        return draws, np.asarray(params["step_size"]), elapsed

    def stats(self, draws: dict, step_size: np.ndarray) -> dict:
        """ArviZ ``sample_stats`` from :meth:`run`'s draws (position excluded)."""
        shape = draws["logdensity"].shape
        return {
            "lp": draws["logdensity"],
            "energy": draws["energy"],
            "n_steps": draws["n_steps"],
            "tree_depth": draws["tree_depth"],
            "diverging": draws["diverging"].astype(bool),
            "acceptance_rate": draws["acceptance_rate"],
            "step_size": np.broadcast_to(step_size[:, None], shape),
            "reached_max_treedepth": draws["tree_depth"] >= self.settings.max_tree_depth,
        }
