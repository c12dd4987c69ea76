"""Data-tempered sequential Monte Carlo: posterior mass and the Bayesian free energy across n.

The targets are the model's posteriors along a continuous *data path* s ∈ [0, s_max]:

    π_s(w) ∝ φ(w) · exp(ℓ_s(w)),    ℓ_s(w) = β Σ_k m_k(s) log p(x_k | w),    m_k(s) = clip(s − k, 0, 1),

so at an integer s = n the target is the posterior on D_n = the first n rows (the sweep's nested
datasets, D_{n₁} ⊂ D_{n₂} ⊂ …) and in between the next row enters with a fractional weight.  Models
whose "sample size" is a number rather than rows (the one-dimensional K(w) examples, the population
TMS model) take s directly as their ``n`` data container.  The log density is the model's own
compiled ``logp`` (:mod:`tms_bayes.inference.compile`) with the path's data as arguments: one
program for every stage and every grid point.

**Algorithm** (Del Moral, Doucet & Jasra 2006; adaptive steps as in Zhou, Johansen & Aston 2016):

1. P particles from the prior (s = 0), weights equal, log Z₀ = 0 (the prior is normalised).
2. Next s: the largest s' ≤ the next grid point whose incremental weights u_i = ℓ_{s'}(w_i) − ℓ_s(w_i)
   keep the conditional ESS  (Σ W_i e^{u_i})² / Σ W_i e^{2u_i}  ≥ ``cess_target``·P (bisection).
3. Reweight: log Z_{s'} = log Z_s + log Σ_i W_i e^{u_i};  W_i ∝ W_i e^{u_i}.
4. Resample (systematic; blackjax's resampling and ESS) when ESS = 1/Σ W_i² < ``resample_threshold``·P.
5. Rejuvenate: ``mcmc_steps`` HMC moves per particle targeting π_{s'} (blackjax HMC, vmapped over
   particles), mass matrix = the particles' weighted variances (our own: blackjax's
   ``smc.tuning.from_particles`` takes unweighted variances, wrong before a resample), step size
   adapted from stage to stage towards ``target_accept``.
6. At a grid point n: record the weighted particles and log Z_n; the free energy is F_n = −log Z_n.

Steps 2–4 are one compiled program (the bisection is a ``lax.while_loop``), the mass matrices and
step 5 two more, so a stage costs three device calls (and a few scalar reads: s, the acceptance, the
ESS) instead of a host round trip per bisection step; the programs take the data as an argument and are
compiled once per model and path kind.  ``SMCSettings.shards`` splits the particles over that many
devices (one per core on CPU after ``tms_bayes.configure()``); it is a recorded setting because the
split changes the order of the sums over particles, so the bits of the result.

Phases separated by high barriers keep their particles: posterior mass moves between them through
the weights, not through MCMC crossings, which is what NUTS chains cannot do.  The estimator of
log Z is unbiased on the Z scale; its spread across independent runs (seeds) is the honest error.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from .. import __version__, _validate
from .._options import setting
from .._jax import jax, jnp
from .compile import CompiledModel

#: SMC settings added after SMC directories were first written, with the value older ones ran with
SMC_LEGACY = {"mass_clusters": 1, "shards": 1}

__all__ = [
    "SMC_LEGACY",
    "SMCSettings",
    "SMCResult",
    "ess",
    "conditional_ess",
    "systematic_resample",
    "mask_path",
    "number_path",
    "prior_particles",
    "run_smc",
    "SMCState",
    "particles_idata",
    "smc_init",
    "smc_step",
]


@dataclass(frozen=True)
class SMCSettings:
    """Settings of a data-tempered SMC run (module docstring)."""

    particles: int = setting(1024, "SMC particles per seed")
    cess_target: float = setting(0.5, "SMC step size: conditional ESS target as a share of particles")
    resample_threshold: float = setting(0.5, "resample when ESS < this share of particles", cli=False)
    mcmc_steps: int = setting(3, "HMC moves per SMC stage")
    leapfrog_steps: int = setting(10, "leapfrog steps per HMC move")
    mass_clusters: int = setting(
        1, "HMC mass matrices per stage: one per k-means cluster of the particles (1: the pooled variance)"
    )
    shards: int = setting(
        1,
        "devices to split the particles over (CPU: run tms_bayes.configure() first for one device per core); "
        "results depend on it bitwise",
    )
    target_accept: float = setting(0.65, "HMC step-size target acceptance", cli=False)
    initial_step_size: float = setting(0.05, "first HMC step size", cli=False)
    max_stages: int = setting(5000, "most tempering stages per run", cli=False)

    def __post_init__(self):
        _validate.integer("particles", self.particles, minimum=8)
        for name in ("cess_target", "resample_threshold", "target_accept"):
            v = float(getattr(self, name))
            if not 0.0 < v < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {v!r}")
        _validate.integer("mcmc_steps", self.mcmc_steps, minimum=0)
        _validate.integer("leapfrog_steps", self.leapfrog_steps, minimum=1)
        _validate.integer("mass_clusters", self.mass_clusters, minimum=1, maximum=64)
        _validate.integer("shards", self.shards, minimum=1)
        if self.particles % self.shards:
            raise ValueError(
                f"particles ({self.particles}) must be a multiple of shards ({self.shards}): "
                "every device holds the same number"
            )
        _validate.positive("initial_step_size", self.initial_step_size)
        _validate.integer("max_stages", self.max_stages, minimum=1)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SMCResult:
    """Output at each grid point: particles (grid, P, dim), normalised log weights (grid, P),
    log Z (grid,), and per-stage diagnostics."""

    grid: np.ndarray
    particles: np.ndarray
    log_weights: np.ndarray
    log_evidence: np.ndarray
    stages: dict
    settings: SMCSettings
    wall_time_s: float

    @property
    def free_energy(self) -> np.ndarray:
        """F_n = −log Z_n at each grid point."""
        return -self.log_evidence

    def ess(self) -> np.ndarray:
        return np.array([ess(lw) for lw in self.log_weights])


# ---------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------
def _normalise(logw):
    logw = np.asarray(logw, dtype=float)
    m = np.max(logw)
    return logw - (m + np.log(np.sum(np.exp(logw - m))))


def ess(logw) -> float:
    """Effective sample size 1/Σ W_i² of (unnormalised) log weights: blackjax's
    ``smc.ess.log_ess`` = 2 logsumexp(log w) − logsumexp(2 log w)."""
    from blackjax.smc.ess import log_ess  # here: importing blackjax starts JAX's backend

    return float(np.exp(log_ess(jnp.asarray(logw, dtype=float))))


def conditional_ess(logw, increments) -> float:
    """Conditional ESS of a reweighting by e^{u_i}:  P (Σ W_i e^{u_i})² / Σ W_i e^{2u_i}  ∈ [0, P]
    (Zhou, Johansen & Aston 2016); equals P when every u_i is the same.  Our own: blackjax's adaptive
    tempering solves for the plain ESS of the incremental weights, which forgets the current weights."""
    lw = _normalise(logw)
    u = np.asarray(increments, dtype=float)
    u = np.where(np.isfinite(u), u, -np.inf)
    m = np.max(u)
    if not np.isfinite(m):
        return 0.0
    a = np.exp(lw + u - m).sum()
    b = np.exp(lw + 2 * (u - m)).sum()
    return float(len(u) * a * a / b)


def systematic_resample(key, logw, size: int | None = None) -> np.ndarray:
    """Indices of a systematic resample (blackjax's ``smc.resampling.systematic``, one uniform from the
    JAX ``key``): particle i appears ⌊P W_i⌋ or ⌈P W_i⌉ times."""
    from blackjax.smc.resampling import systematic

    w = jnp.asarray(np.exp(_normalise(logw)))
    return np.asarray(systematic(key, w, len(w) if size is None else size))


# ---------------------------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------------------------
def _path(base: dict, at: Callable, s_max: float) -> Callable:
    """A data path: ``path(s)`` = ``at(path.base, s)``; ``at`` is a pure function of (data, s), so the
    compiled stage programs take the data as an argument and serve every dataset (:func:`_programs`)."""
    base = {k: jnp.asarray(v) for k, v in base.items()}

    def path(s):
        return at(base, s)

    path.base, path.at, path.s_max = base, at, s_max
    return path


def _mask_at(base: dict, s):
    rows = jnp.arange(base["mask"].shape[0], dtype=float)
    return {**base, "mask": jnp.clip(s - rows, 0.0, 1.0)}


def mask_path(data: dict) -> Callable:
    """Data tempering through the padding mask: m_k(s) = clip(s − k, 0, 1) (module docstring)."""
    return _path(data, _mask_at, float(np.shape(data["mask"])[0]))


@functools.lru_cache(maxsize=None)
def _number_at(name: str) -> Callable:
    def at(base, s):
        return {**base, name: jnp.asarray(s, dtype=float)}

    return at


def number_path(data: dict, name: str = "n") -> Callable:
    """A path for models whose sample size is the data container ``name`` (set to s)."""
    return _path(data, _number_at(name), math.inf)


def prior_particles(model, cm: CompiledModel, size: int, seed: int = 0) -> np.ndarray:
    """``size`` draws from the model's prior, in the compiled flat (unconstrained) layout."""
    import pymc as pm

    size = _validate.integer("size", size, minimum=1)
    draws = pm.draw([model[name] for name in cm.rv_names], draws=size, random_seed=seed)
    import pytensor.tensor as pt

    parts = []
    for name, shape, d in zip(cm.rv_names, cm.param_shapes, draws):
        rv = model[name]
        d = np.asarray(d, dtype=float).reshape(size, *shape)
        tr = model.rvs_to_transforms.get(rv)
        if tr is not None:  # into the unconstrained space the compiled log density lives in
            d = np.asarray(tr.forward(pt.as_tensor_variable(d), *rv.owner.inputs).eval(), dtype=float)
        parts.append(d.reshape(size, -1))
    return np.concatenate(parts, axis=1)


# ---------------------------------------------------------------------------------------------
# The sampler
# ---------------------------------------------------------------------------------------------
def _programs(cm: CompiledModel, path: Callable, settings: SMCSettings, constraint: Callable | None = None):
    """:func:`_compile_programs` for ``path``'s kind with ``path``'s data bound, made once per (model,
    path kind, settings) and kept on the model: every dataset and every run of a sweep reuses the same
    compiled programs (a run restricted by its own ``constraint`` compiles its own)."""
    at = getattr(path, "at", None)
    cm.check_data(getattr(path, "base", {}))  # the data the programs will see (concrete here)
    if at is None or constraint is not None:  # a bare callable s ↦ data, or a run's own region: not kept
        base = getattr(path, "base", {})
        programs = _compile_programs(cm, at or (lambda _, s: path(s)), settings, constraint)
    else:
        base = path.base
        cache = cm.__dict__.setdefault("_smc_programs", {})
        if (at, settings) not in cache:
            cache[at, settings] = _compile_programs(cm, at, settings, None)
        programs = cache[at, settings]
    loglik_all, reweight, metric, move = programs
    return (
        functools.partial(loglik_all, base=base),
        functools.partial(reweight, base=base),
        metric,
        functools.partial(move, base=base),
    )


def _compile_programs(cm: CompiledModel, at: Callable, settings: SMCSettings, constraint: Callable | None):
    """The compiled programs of a stage (three device calls, whatever the bisection takes):

    - ``reweight(x, logw, log_z, s, cur, target, key)``: steps 2–4 — the next s' by bisection on the
      conditional ESS (a ``lax.while_loop``), log Z and the weights, the systematic resample when the
      ESS is low; returns (x, logw, log_z, s', resampled, key);
    - ``metric(key, x, logw)``: the mass matrices (one, or one per k-means cell: ``mass_clusters``);
    - ``move(keys, x, s, step_size, centres, scale, inv_mass)``: step 5, ``mcmc_steps`` HMC moves per particle
      (vmapped), returning the moved particles, each one's mean acceptance and every particle's
      log density at s (the next stage's ``cur``).

    With ``constraint`` (w ↦ bool, JAX) the moves target the posterior restricted to {constraint}: a
    proposal outside it has log density −∞ and is rejected (the leapfrog map stays volume-preserving
    and reversible)."""
    import blackjax  # here, not at import: importing blackjax starts JAX's backend (device count)
    from blackjax.smc.resampling import systematic

    def loglik_all(x, s, base):
        return jax.vmap(cm.logdensity(at(base, s)))(x)

    def reweight(x, logw, log_z, s, cur, target, key, base):
        P = x.shape[0]
        need = settings.cess_target * P

        def good(cand):
            return _cess(logw, cand - cur) >= need

        full = loglik_all(x, target, base)

        def search(_):
            def unfinished(c):
                lo, hi, _, i = c
                return (i < 30) & (hi - lo >= 1e-6 * jnp.maximum(1.0, hi))

            def bisect(c):
                lo, hi, new, i = c
                mid = 0.5 * (lo + hi)
                cand = loglik_all(x, mid, base)
                ok = good(cand)
                return jnp.where(ok, mid, lo), jnp.where(ok, hi, mid), jnp.where(ok, cand, new), i + 1

            lo, hi, new, _ = jax.lax.while_loop(unfinished, bisect, (s, target, cur, 0))
            stuck = lo <= s  # even a tiny step collapses the weights: take it anyway
            lo = jnp.where(stuck, s + (hi - s) * 1e-3, lo)
            return lo, jax.lax.cond(stuck, lambda: loglik_all(x, lo, base), lambda: new)

        s_new, new = jax.lax.cond(
            good(full), lambda _: (jnp.asarray(target, dtype=float), full), search, None
        )
        u = new - cur
        u = jnp.where(jnp.isfinite(u), u, -jnp.inf)
        total = jax.scipy.special.logsumexp(logw + u)
        log_z = log_z + total
        logw = logw + u - total
        resampled = 1.0 / jnp.sum(jnp.exp(2 * logw)) < settings.resample_threshold * P
        key, k = jax.random.split(key)
        idx = systematic(k, jnp.exp(logw), P)
        x = jnp.where(resampled, x[idx], x)
        logw = jnp.where(resampled, jnp.full(P, -math.log(P)), logw)
        return x, logw, log_z, s_new, resampled, key

    K = settings.mass_clusters

    def metric(key, x, logw):
        """Per-cluster mass matrices: weighted k-means (K clusters, 10 Lloyd steps, starts drawn by
        weight) in coordinates scaled by the pooled standard deviations, then each cluster's weighted
        variance — the pooled one for a cluster too light to estimate it (effective size < 2·dim)."""
        W = jnp.exp(logw)
        mean = W @ x
        pooled = jnp.maximum(W @ (x - mean) ** 2, 1e-8)
        if K == 1:
            return mean[None], jnp.sqrt(pooled), pooled[None]
        scale = jnp.sqrt(pooled)
        z = x / scale
        start = jax.random.choice(key, x.shape[0], (K,), replace=False, p=W)

        def lloyd(centres, _):
            member = jax.nn.one_hot(jnp.argmin(((z[:, None] - centres[None]) ** 2).sum(-1), axis=1), K)
            mass = (W[:, None] * member).sum(0)
            new = ((W[:, None] * member).T @ z) / jnp.maximum(mass, 1e-300)[:, None]
            return jnp.where(mass[:, None] > 0, new, centres), None

        centres, _ = jax.lax.scan(lloyd, z[start], None, length=10)
        member = jax.nn.one_hot(jnp.argmin(((z[:, None] - centres[None]) ** 2).sum(-1), axis=1), K)
        wk = W[:, None] * member  # (P, K)
        mass = wk.sum(0)
        mu = (wk.T @ x) / jnp.maximum(mass, 1e-300)[:, None]
        var = jnp.einsum("pk,pkd->kd", wk, (x[:, None] - mu[None]) ** 2) / jnp.maximum(mass, 1e-300)[:, None]
        ess_k = mass**2 / jnp.maximum((wk**2).sum(0), 1e-300)
        var = jnp.where((ess_k >= 2 * x.shape[1])[:, None], jnp.maximum(var, 1e-8), pooled[None])
        return centres * scale, scale, var

    def move(keys, x, s, step_size, centres, scale, inv_mass, base):
        logp = cm.logdensity(at(base, s))  # once per stage: outside the moves' loops
        if constraint is None:
            target = logp
        else:
            target = lambda w: jnp.where(constraint(w), logp(w), -jnp.inf)  # noqa: E731

        def cell(w):  # the k-means cell of w (its nearest centre in scaled coordinates)
            return jnp.argmin((((w - centres) / scale) ** 2).sum(-1))

        kernel = blackjax.hmc.build_kernel()

        def one(key, w):
            c = cell(w)
            # K > 1: HMC with the cell's own mass matrix, restricted to the cell — π-invariant (a proposal
            # that leaves the cell is rejected, so forward and reverse moves use the same matrix)
            logdensity = target if K == 1 else (lambda v: jnp.where(cell(v) == c, target(v), -jnp.inf))
            state = blackjax.hmc.init(w, logdensity)

            def step(carry, k):
                st, acc = carry
                st, info = kernel(k, st, logdensity, step_size, inv_mass[c], settings.leapfrog_steps)
                return (st, acc + info.acceptance_rate), None

            (state, acc), _ = jax.lax.scan(step, (state, 0.0), jax.random.split(key, settings.mcmc_steps))
            return state.position, acc / settings.mcmc_steps

        x, acc = jax.vmap(one)(keys, x)
        return x, acc, loglik_all(x, s, base)

    return jax.jit(loglik_all), jax.jit(reweight), jax.jit(metric), jax.jit(move)


def _cess(logw, u):
    """:func:`conditional_ess` in JAX (``logw`` normalised)."""
    u = jnp.where(jnp.isfinite(u), u, -jnp.inf)
    m = jnp.max(u)
    a = jnp.sum(jnp.exp(logw + u - m))
    b = jnp.sum(jnp.exp(logw + 2 * (u - m)))
    return jnp.where(jnp.isfinite(m), u.shape[0] * a * a / b, 0.0)


def _shard_particles(x, shards: int):
    """Particles (P, dim) split over ``shards`` devices along P (``SMCSettings.shards``): every compiled
    program then runs its particle map on all of them.  The split changes the order of the sums over
    particles, so it is a setting of the run (recorded), never chosen from the machine."""
    if shards == 1:
        return x
    if jax.device_count() < shards:
        raise ValueError(
            f"SMC shards = {shards} needs {shards} devices, JAX has {jax.device_count()}; on CPU call "
            "tms_bayes.configure() before JAX starts (one device per core), or lower shards"
        )
    mesh = jax.make_mesh(
        (shards,), ("particle",), axis_types=(jax.sharding.AxisType.Auto,), devices=jax.devices()[:shards]
    )
    return jax.device_put(x, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("particle")))


@dataclass
class SMCState:
    """Where a data-tempered SMC run stands: particles ``x`` (P, dim) at path position ``s`` with their
    normalised log weights, the running log Z, each particle's log density at ``s`` (``cur``), the HMC
    step size, the JAX key for the moves and the resampling, and the number of stages taken.
    :func:`smc_init` makes it, :func:`smc_step` advances it by one stage.  Arrays stay on the device."""

    x: object
    logw: object
    log_z: object
    s: float
    cur: object
    step_size: float
    key: object
    stages: int = 0


def smc_init(programs, x0, settings: SMCSettings, *, seed: int = 0, log_z0: float = 0.0) -> SMCState:
    """The state at s = 0: prior particles ``x0`` with equal weights and log Z = ``log_z0``, split over
    ``settings.shards`` devices; ``programs`` = :func:`_programs`."""
    loglik_all = programs[0]
    x = _shard_particles(jnp.asarray(np.asarray(x0, dtype=float)), settings.shards)
    P = x.shape[0]
    return SMCState(
        x=x,
        logw=jnp.full(P, -math.log(P)),
        log_z=jnp.asarray(float(log_z0)),
        s=0.0,
        cur=loglik_all(x, 0.0),
        step_size=settings.initial_step_size,
        key=jax.random.key(seed),
    )


def smc_step(
    state: SMCState, target: float, programs, settings: SMCSettings, canonicalise: Callable | None = None
) -> tuple[SMCState, dict]:
    """One stage towards ``target`` (steps 2–5 of the module docstring: next s, reweight and update
    log Z, resample when the ESS is low, HMC rejuvenation with the particles' weighted variances as
    mass matrix); returns the new state and the stage's diagnostics {s, ess, resampled, acceptance,
    step_size}.  Three compiled programs (:func:`_programs`); the host sees s and the diagnostics."""
    _, reweight, metric, move = programs
    P = state.x.shape[0]
    x, logw, log_z, s_new, resampled, key = reweight(
        state.x, state.logw, state.log_z, state.s, state.cur, float(target), state.key
    )
    s_new = float(s_new)
    step, acc, cur = state.step_size, math.nan, state.cur
    if settings.mcmc_steps:
        if canonicalise is not None:
            x = _shard_particles(jnp.asarray(canonicalise(np.asarray(x))), settings.shards)
        key, k, kc = jax.random.split(key, 3)
        centres, scale, inv_mass = metric(kc, x, logw)
        x, a, cur = move(jax.random.split(k, P), x, s_new, step, centres, scale, inv_mass)
        acc = float(jnp.mean(a))
        step *= math.exp(np.clip(acc - settings.target_accept, -0.5, 0.5))
    else:
        cur = programs[0](x, s_new)
    new_state = SMCState(x=x, logw=logw, log_z=log_z, s=s_new, cur=cur, step_size=step, key=key)
    new_state.stages = state.stages + 1
    stage = {
        "s": s_new,
        "ess": float(1.0 / jnp.sum(jnp.exp(2 * logw))),
        "resampled": bool(resampled),
        "acceptance": acc,
        "step_size": step,
    }
    return new_state, stage


def run_smc(
    cm: CompiledModel,
    path: Callable,
    grid,
    x0,
    *,
    settings: SMCSettings | None = None,
    seed: int = 0,
    progress: bool = True,
    desc: str = "smc",
    constraint: Callable | None = None,
    log_z0: float = 0.0,
    canonicalise: Callable | None = None,
) -> SMCResult:
    """Run data-tempered SMC from prior particles ``x0`` (P, dim) along ``path`` and record the
    weighted particles and log Z at every point of ``grid`` (increasing, > 0) — module docstring.
    A thin driver over :func:`smc_init` and :func:`smc_step` that stops at every grid point (our own
    code: blackjax's tempered SMC moves a temperature in [0, 1], not a fractional data path with
    stops at chosen n).

    Restricted targets: with ``constraint`` the targets are π_s restricted to {constraint}; ``x0`` must
    then be prior draws inside it and ``log_z0`` the log prior mass of the region, so that log Z_n is
    the log evidence of the region, −F_n(W_α) (:mod:`tms_bayes.inference.phase_smc`).

    ``canonicalise`` (particles (P, dim) → (P, dim), numpy) maps each particle by a symmetry of the
    target before the mass matrix is estimated and the particles are moved; the target, the path and
    any constraint must be invariant under it, so it changes no weight.  With it the particle variance
    measures the spread within one copy of a symmetric posterior, not across copies."""
    from tqdm.auto import tqdm

    settings = settings or SMCSettings()
    grid = np.asarray(_validate.sample_sizes("grid", grid), dtype=float)
    if np.any(np.diff(grid) <= 0):
        raise ValueError(f"grid must be strictly increasing, got {grid.tolist()}")
    if grid[-1] > getattr(path, "s_max", math.inf):
        raise ValueError(f"the grid's largest n = {grid[-1]:g} exceeds the data's {path.s_max:g} rows")
    programs = _programs(cm, path, settings, constraint)
    state = smc_init(programs, x0, settings, seed=seed, log_z0=log_z0)
    out_x, out_w, out_z = [], [], []
    stages = {"s": [], "ess": [], "resampled": [], "acceptance": [], "step_size": []}
    t0 = time.perf_counter()
    bar = tqdm(
        total=float(grid[-1]),
        desc=desc,
        unit="n",
        disable=not progress,
        leave=False,
        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} [{elapsed}<{remaining}]",
    )
    for target in grid:
        while state.s < target:
            if state.stages >= settings.max_stages:
                raise ValueError(
                    f"SMC needed more than max_stages = {settings.max_stages} stages before n = {target:g}; "
                    "raise max_stages or lower cess_target"
                )
            before = state.s
            state, stage = smc_step(state, target, programs, settings, canonicalise)
            bar.update(state.s - before)
            for k, v in stage.items():
                stages[k].append(v)
        out_x.append(np.asarray(state.x))
        out_w.append(np.asarray(state.logw))
        out_z.append(float(state.log_z))
    bar.close()
    return SMCResult(
        grid,
        np.stack(out_x),
        np.stack(out_w),
        np.array(out_z),
        {k: np.asarray(v) for k, v in stages.items()},
        settings,
        time.perf_counter() - t0,
    )


def particles_idata(posterior: dict, log_weight, coords: dict, dims: dict, attrs: dict):
    """Weighted particles as InferenceData: ``posterior`` {name: (1, P, ...)} (chain = 1, draw = particle),
    normalised ``log_weight`` (P,) in sample_stats, ``attrs`` on every group."""
    import warnings

    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = az.from_dict(
            posterior=posterior,
            sample_stats={"log_weight": np.asarray(log_weight)[None]},
            coords=coords,
            dims={k: list(v) for k, v in dims.items() if k in posterior and v},
        )
    for g in idata.groups():
        getattr(idata, g).attrs.update(attrs)
    return idata


def smc_attrs(settings: SMCSettings) -> dict:
    return {
        **{f"smc_{k}": v for k, v in settings.to_dict().items()},
        "tms_bayes_version": __version__,
        "algorithm": "data-tempered SMC (adaptive CESS steps, systematic resampling, HMC rejuvenation)",
    }
