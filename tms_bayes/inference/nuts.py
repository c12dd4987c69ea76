"""Compile-once NUTS on the JAX backend (blackjax) for a batch of chains with per-chain data.

:func:`make_program` builds one jitted program for a :class:`CompiledModel` that runs a chunk of
transitions of every chain: Stan-style window adaptation (step size by dual averaging, diagonal or
dense inverse mass matrix: ``mass_matrix``), **per chain**, then NUTS with the adapted parameters —
warmup and sampling in one program (they share the NUTS transition, which is most of what XLA compiles;
one compilation instead of two saves ≈ 1.2 s of a cold sweep's ≈ 4.2 s of compiling on a 2-core CPU).
What each transition of a chunk does (adapt, keep, nothing) is an argument (:func:`plan`), as are
the data (padded to a fixed number of rows, with a mask) and β, with a leading chain axis, so every
n, every seed and every chunk of a sweep reuse the same compiled program.  The draws are those of
blackjax's ``window_adaptation(...).run`` followed by ``blackjax.nuts`` transitions with the same keys
(``tests/test_nuts.py``: to 1e-9; on the 2-core CPU of the benchmarks the default, sequential chains with
a diagonal mass matrix, gave every draw of two TMS jobs bit for bit as the two programs before did).

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

__all__ = ["NutsSettings", "Draws", "make_program", "plan", "window_adaptation", "ChainSampler", "Cancelled"]

#: ChEES: initial step size and Adam's learning rate for log trajectory length (the paper's 0.025)
CHEES_STEP_SIZE, CHEES_LEARNING_RATE = 0.1, 0.025


@dataclass(frozen=True)
class NutsSettings:
    """NUTS settings.  ``devices``: how many devices to shard chains over (None: as many as divide
    the number of chains, up to ``jax.device_count()``)."""

    tune: int = 300
    draws: int = 300
    chunk: int = 50  # at most this many transitions per compiled call (progress granularity; :func:`calls`)
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
    step_size: jax.Array  # the step size of the transition


class Carry(NamedTuple):
    """What one chain carries from one transition to the next: the NUTS state and the window
    adaptation's state (:func:`window_adaptation`)."""

    state: blackjax.mcmc.hmc.HMCState
    adaptation: tuple


#: a transition's role in :func:`plan`: padding (run, its result dropped), warmup (adapting), a kept draw
PAD, WARMUP, SAMPLE = 0, 1, 2


def window_adaptation(target_accept: float, diagonal: bool):
    """Stan's warmup (Stan reference manual, "HMC algorithm parameters"; blackjax's
    ``window_adaptation``, whose building blocks these are) as three pure functions of a per-chain state
    (dual-averaging state, mass-matrix state, current step size, current inverse mass matrix):

    - ``init(dim)``: step size 1, inverse mass matrix I;
    - ``update(state, stage, window_end, position, acceptance)``: every warmup transition adapts the log
      step size by dual averaging towards the target acceptance; in a slow window (``stage`` 1) the
      position also enters Welford's running covariance, and at the end of each slow window the inverse
      mass matrix becomes its regularised estimate (n Σ̂ + 5·10⁻³ I)/(n + 5) and dual averaging restarts
      from the window's averaged step size;
    - ``step_size(state)``: the step size for sampling, exp of the averaged log step size.

    The windows (``stage``, ``window_end`` per warmup transition) are blackjax's ``build_schedule``."""
    from blackjax.adaptation.mass_matrix import mass_matrix_adaptation
    from blackjax.adaptation.step_size import dual_averaging_adaptation

    mm_init, mm_update, mm_final = mass_matrix_adaptation(diagonal)
    da_init, da_update, da_final = dual_averaging_adaptation(target_accept)

    def init(dim):
        mm = mm_init(dim)
        return da_init(1.0), mm, jnp.asarray(1.0), mm.inverse_mass_matrix

    def fast(position, acceptance, state):
        da, mm, _, imm = state
        da = da_update(da, acceptance)
        return da, mm, jnp.exp(da.log_step_size), imm

    def slow(position, acceptance, state):
        da, mm, _, _ = state
        mm, da = mm_update(mm, position), da_update(da, acceptance)
        return da, mm, jnp.exp(da.log_step_size), mm.inverse_mass_matrix

    def window_end(state):
        da, mm, _, _ = state
        mm = mm_final(mm)
        da = da_init(da_final(da))
        return da, mm, jnp.exp(da.log_step_size), mm.inverse_mass_matrix

    def update(state, stage, end, position, acceptance):
        state = jax.lax.switch(stage, (fast, slow), position, acceptance, state)
        return jax.lax.cond(end, window_end, lambda s: s, state)

    def step_size(state):
        return jnp.exp(state[0].log_step_size_avg)

    return init, update, step_size


def calls(settings: NutsSettings) -> tuple[int, int]:
    """(calls, transitions per call) of a run: the fewest calls of at most ``chunk`` transitions that
    hold ``tune + draws``, evened out, so that fewer than ``calls`` transitions are padding."""
    total = settings.tune + settings.draws
    n = math.ceil(total / settings.chunk)
    return n, math.ceil(total / n)


def plan(settings: NutsSettings) -> dict[str, np.ndarray]:
    """The transitions of a run, in :func:`calls`: {"mode", "stage", "end"}, each (calls, per call) —
    ``tune`` warmup transitions (mode :data:`WARMUP`, with the window schedule's stage and window end)
    then ``draws`` kept ones (:data:`SAMPLE`), then padding (:data:`PAD`: the transition runs, its
    result is dropped) to fill the last call."""
    from blackjax.adaptation.window_adaptation import build_schedule

    total = settings.tune + settings.draws
    n, per_call = calls(settings)
    size = n * per_call
    mode = np.full(size, PAD, dtype=np.int32)
    mode[: settings.tune], mode[settings.tune : total] = WARMUP, SAMPLE
    schedule = np.zeros((size, 2), dtype=np.int32)
    schedule[: settings.tune] = np.asarray(build_schedule(settings.tune))
    return {
        "mode": mode.reshape(n, -1),
        "stage": schedule[:, 0].reshape(n, -1),
        "end": schedule[:, 1].astype(bool).reshape(n, -1),
    }


def make_program(cm: CompiledModel, settings: NutsSettings, chains: int, impl) -> Callable:
    """The jitted NUTS program for ``chains`` chains of ``cm`` and keys of the PRNG ``impl`` (module
    docstring): ``advance(keys, call, carry, position, data, plan) -> (carry, draws)`` runs call ``call``
    of :func:`plan` — warmup transitions, kept ones or both — for every chain.  ``keys`` (chain, per call,
    ...): the key data of its transitions (:func:`transition_keys`); ``carry`` (:class:`Carry`, leading
    chain axis): where the last call left off — ignored by call 0, which starts at ``position`` (chain,
    dim); ``data``: with a leading chain axis; ``plan``: row ``call`` of :func:`plan`, shared by the
    chains.  The chains are sharded across devices (``settings.devices``).  A warmup transition runs
    NUTS with the adaptation's current step size and inverse mass matrix, then adapts them
    (:func:`window_adaptation`); a kept one runs with the adapted ones, frozen — the transitions of
    blackjax's ``window_adaptation(...).run`` followed by ``blackjax.nuts(...)`` steps, in one program
    instead of two."""
    kernel = blackjax.nuts.build_kernel()
    adapt_init, adapt_update, sampling_step_size = window_adaptation(
        settings.target_accept, settings.mass_matrix == "diag"
    )

    def advance_one(keys, call, carry, position, data, plan):
        logdensity = cm.logdensity(data)
        keys = jax.random.wrap_key_data(keys, impl=impl)

        def start(_):
            return Carry(blackjax.nuts.init(position, logdensity), adapt_init(position.shape[-1]))

        carry = jax.lax.cond(call == 0, start, lambda c: c, carry)

        def step(carry, xs):
            key, mode, stage, end = xs
            state, adaptation = carry
            warm = mode == WARMUP
            step_size = jnp.where(warm, adaptation[2], sampling_step_size(adaptation))
            new, info = kernel(
                key, state, logdensity, step_size, adaptation[3], max_num_doublings=settings.max_tree_depth
            )
            adapted = adapt_update(adaptation, stage, end, new.position, info.acceptance_rate)
            carry = Carry(_where(mode != PAD, new, state), _where(warm, adapted, adaptation))
            draws = Draws(
                new.position,
                new.logdensity,
                info.energy,
                info.num_integration_steps,
                info.num_trajectory_expansions,
                info.is_divergent,
                info.acceptance_rate,
                step_size,
            )
            return carry, draws

        return jax.lax.scan(step, carry, (keys, plan["mode"], plan["stage"], plan["end"]))

    if settings.chain_method == "vectorized":
        advance = jax.vmap(advance_one, in_axes=(0, None, 0, 0, 0, None))
    else:

        def advance(keys, call, carry, position, data, plan):
            return jax.lax.map(lambda a: advance_one(a[0], call, *a[1:], plan), (keys, carry, position, data))

    shards = shard_count(chains, settings.devices)
    if shards > 1:
        mesh = jax.make_mesh(
            (shards,), ("chain",), axis_types=(jax.sharding.AxisType.Auto,), devices=jax.devices()[:shards]
        )
        spec, shared = jax.sharding.PartitionSpec("chain"), jax.sharding.PartitionSpec()
        advance = jax.shard_map(
            advance,
            mesh=mesh,
            in_specs=(spec, shared, spec, spec, spec, shared),
            out_specs=spec,
            check_vma=False,
        )
    return jax.jit(advance)


def _where(condition, new, old):
    """``new`` where ``condition`` holds, else ``old``, leaf by leaf of two pytrees of one structure."""
    return jax.tree.map(lambda a, b: jnp.where(condition, a, b), new, old)


def transition_keys(key, chains: int, settings: NutsSettings) -> np.ndarray:
    """The key data of every chain's transitions, (chain, calls × per call, *key shape) for :func:`plan`:
    ``key`` split into one key per chain for the warmup, split again into one per warmup transition, and
    one per chain and chunk of draws, split into one per kept transition (padding reuses the last key).
    Computed on the host (:mod:`~tms_bayes.inference.threefry` for JAX's default PRNG)."""
    from . import threefry

    impl = jax.random.key_impl(key)
    if str(impl) == "threefry2x32" and jax.config.jax_threefry_partitionable:
        split = threefry.split
    else:  # another PRNG: JAX's own split, one device call per shape

        def split(data, n):
            keys = jax.random.wrap_key_data(np.reshape(data, (-1, data.shape[-1])), impl=impl)
            out = jax.vmap(lambda k: jax.random.split(k, n))(keys)
            return np.asarray(jax.random.key_data(out)).reshape(*data.shape[:-1], n, data.shape[-1])

    tune, draws, chunk = settings.tune, settings.draws, settings.chunk
    n_chunks = math.ceil(draws / chunk)
    mine = split(np.asarray(jax.random.key_data(key)), chains * (2 + n_chunks))
    mine = mine.reshape(2 + n_chunks, chains, -1)
    kept = np.swapaxes(split(mine[2:], chunk), 0, 1).reshape(chains, n_chunks * chunk, -1)
    steps = np.concatenate([split(mine[0], tune), kept], axis=1)[:, : tune + draws]
    size = math.prod(calls(settings))
    return np.concatenate([steps, np.repeat(steps[:, -1:], size - steps.shape[1], axis=1)], axis=1)


def _chees_programs(cm: CompiledModel, settings: NutsSettings, chains: int | None):
    """Jitted ``warmup(keys, init, data) -> (state, params)`` and ``sample(keys, state, params, data) ->
    (state, draws)`` for the "chees" chain method (module docstring), ``keys`` one per chain; the
    adapted parameters come back with a leading chain axis."""
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
                jnp.broadcast_to(p["step_size"], zeros.shape),
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
    :meth:`run` and reused by every later one: a sweep compiles one program (:func:`make_program`;
    two for the "chees" chain method).  :meth:`run` may be called from several threads at once (the
    program is compiled once, by the first).

    ``compilations`` counts the programs compiled; ``compile_s`` the seconds spent compiling."""

    def __init__(self, cm: CompiledModel, settings: NutsSettings, chains: int):
        self.cm = cm
        self.settings = settings
        self.chains = _validate.integer("chains", chains, minimum=1)
        if settings.chain_method == "chees" and settings.mass_matrix != "diag":
            raise ValueError("chain_method='chees' adapts a diagonal mass matrix: use mass_matrix='diag'")
        if settings.chain_method == "chees" and self.chains < 2:
            raise ValueError("chain_method='chees' adapts across chains: it needs chains >= 2 (use many)")
        if settings.chain_method == "chees":
            self.warmup, self.sample = _chees_programs(cm, settings, self.chains)
        else:
            self.plan = plan(settings)
        self._compiled = None
        self._compiling = threading.Lock()
        self.compilations = 0
        self.compile_s = 0.0

    def compile(self, key, init, data, before_xla: Callable | None = None) -> None:
        """Compile the program(s) for arguments like :meth:`run`'s, unless done already (:meth:`run`
        calls this).  ``before_xla``: called (in this thread, with nothing) once the programs are traced
        and lowered, just before XLA compiles them — XLA releases the GIL, so work started then in
        another thread has a core to itself (a sweep compiles its posterior program then)."""
        with self._compiling:
            if self._compiled is None:
                self._compile(key, init, data, before_xla)

    def _compile(self, key, init, data, before_xla):
        t0 = time.perf_counter()
        if self.settings.chain_method == "chees":
            keys = self._chees_keys(key)
            state, params = jax.eval_shape(self.warmup, keys[0], init, data)
            lowered = [
                self.warmup.lower(keys[0], init, data),
                self.sample.lower(keys[0], state, params, data),
            ]
        else:
            self._impl = jax.random.key_impl(key)
            advance = make_program(self.cm, self.settings, self.chains, self._impl)
            keys = transition_keys(key, self.chains, self.settings)[:, : calls(self.settings)[1]]
            blank, row = self._blank(init), {k: v[0] for k, v in self.plan.items()}
            lowered = [advance.lower(keys, np.int32(0), blank, init, data, row)]
        if before_xla is not None:
            before_xla()
        programs = [low.compile() for low in lowered]  # XLA, without the GIL
        self._compiled = tuple(programs) if self.settings.chain_method == "chees" else (programs[0], blank)
        self.compilations += len(programs)
        self.compile_s += time.perf_counter() - t0

    def _blank(self, init) -> Carry:
        """Zeros in the shape of the program's carry (leading chain axis), for its first call."""
        init_adaptation, _, _ = window_adaptation(
            self.settings.target_accept, self.settings.mass_matrix == "diag"
        )

        def one(position):  # the state's structure only: any log density of the position's dtype
            return Carry(blackjax.nuts.init(position, jnp.sum), init_adaptation(position.shape[-1]))

        return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), jax.eval_shape(jax.vmap(one), init))

    def run(self, key, init, data, bar=None, cancel=None, before_xla=None) -> tuple[dict, float]:
        """Warm up and sample every chain from ``init`` (chains, dim) on per-chain ``data`` (leading
        chain axis, see :func:`stack_data`), with the transitions' keys drawn from ``key`` (one key).
        Returns (draws: {:class:`Draws` field: (chain, draw, ...)}, sampling seconds); ``bar`` (tqdm)
        advances per chunk of transitions.  ``cancel`` (a ``threading.Event``), when set, stops the run
        before its next compiled call (a chunk of transitions) with :class:`Cancelled`.
        ``before_xla``: see :meth:`compile` (used only by the run that compiles)."""
        st = self.settings
        self.cm.check_data(data)
        if jnp.ndim(key) != 0:
            raise ValueError(f"key must be one PRNG key (jax.random.key(seed)), got shape {jnp.shape(key)}")

        def go_on():
            if cancel is not None and cancel.is_set():
                raise Cancelled("sampling cancelled")

        go_on()
        self.compile(key, init, data, before_xla)
        t0 = time.perf_counter()
        if st.chain_method == "chees":
            chunks = self._run_chees(key, init, data, bar, go_on)
        else:
            program, carry = self._compiled
            if jax.random.key_impl(key) != self._impl:
                raise ValueError(
                    f"this sampler was compiled for {self._impl} keys, got a {jax.random.key_impl(key)} key"
                )
            keys = transition_keys(key, self.chains, st)
            keys = keys.reshape(self.chains, *calls(st), keys.shape[-1])
            chunks = []
            for i in range(self.plan["mode"].shape[0]):
                go_on()
                row = {k: v[i] for k, v in self.plan.items()}
                carry, draws = program(keys[:, i], np.int32(i), carry, init, data, row)
                kept = row["mode"] == SAMPLE
                if kept.any():
                    chunks.append(jax.tree.map(lambda x: x[:, kept], jax.device_get(draws)))
                else:  # warm-up only: wait for it, so that progress and cancel follow the chunks
                    jax.block_until_ready(carry)
                if bar is not None:
                    bar.update(int(np.sum(row["mode"] != PAD)))
        elapsed = time.perf_counter() - t0
        draws = {
            f: np.concatenate([getattr(c, f) for c in chunks], axis=1)[:, : st.draws] for f in Draws._fields
        }
        return draws, elapsed

    def _chees_keys(self, key):
        """ChEES's keys: (2 + chunks of draws, chain), row 0 the warmup's, row 2 + i chunk i's."""
        n_chunks = math.ceil(self.settings.draws / self.settings.chunk)
        return jax.random.split(key, self.chains * (2 + n_chunks)).reshape(-1, self.chains)

    def _run_chees(self, key, init, data, bar, go_on) -> list:
        """ChEES's warmup program, then its sampling program per chunk of draws."""
        st = self.settings
        keys = self._chees_keys(key)
        warm, samp = self._compiled
        go_on()
        state, params = warm(keys[0], init, data)
        if bar is not None:
            bar.update(st.tune)
        chunks = []
        for i in range(math.ceil(st.draws / st.chunk)):
            go_on()
            state, draws = samp(keys[2 + i], state, params, data)
            chunks.append(jax.device_get(draws))
            if bar is not None:
                bar.update(min(st.chunk, st.draws - i * st.chunk))
        return chunks

    def stats(self, draws: dict) -> dict:
        """ArviZ ``sample_stats`` from :meth:`run`'s draws (position excluded)."""
        return {
            "lp": draws["logdensity"],
            "energy": draws["energy"],
            "n_steps": draws["n_steps"],
            "tree_depth": draws["tree_depth"],
            "diverging": draws["diverging"].astype(bool),
            "acceptance_rate": draws["acceptance_rate"],
            "step_size": draws["step_size"],
            "reached_max_treedepth": draws["tree_depth"] >= self.settings.max_tree_depth,
        }
