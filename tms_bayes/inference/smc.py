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

Phases separated by high barriers keep their particles: posterior mass moves between them through
the weights, not through MCMC crossings, which is what NUTS chains cannot do.  The estimator of
log Z is unbiased on the Z scale; its spread across independent runs (seeds) is the honest error.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from .. import __version__, _validate
from .._options import setting
from .._jax import jax, jnp
from .compile import CompiledModel

__all__ = [
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
def mask_path(data: dict) -> Callable:
    """Data tempering through the padding mask: m_k(s) = clip(s − k, 0, 1) (module docstring)."""
    rows = jnp.arange(np.shape(data["mask"])[0], dtype=float)
    base = {k: jnp.asarray(v) for k, v in data.items()}

    def path(s):
        return {**base, "mask": jnp.clip(s - rows, 0.0, 1.0)}

    path.s_max = float(np.shape(data["mask"])[0])
    return path


def number_path(data: dict, name: str = "n") -> Callable:
    """A path for models whose sample size is the data container ``name`` (set to s)."""
    base = {k: jnp.asarray(v) for k, v in data.items()}

    def path(s):
        return {**base, name: jnp.asarray(s, dtype=float)}

    path.s_max = math.inf
    return path


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
    """Jitted (log-likelihood part of every particle at s, HMC rejuvenation at s).  With ``constraint``
    (w ↦ bool, JAX) the moves target the posterior restricted to {constraint}: a proposal outside it
    has log density −∞ and is rejected (the leapfrog map stays volume-preserving and reversible)."""

    def loglik_all(x, s):
        data = path(s)
        return jax.vmap(lambda w: cm.logp(w, data))(x)

    def move(keys, x, s, step_size, inv_mass):
        data = path(s)
        if constraint is None:
            logdensity = lambda w: cm.logp(w, data)  # noqa: E731
        else:
            logdensity = lambda w: jnp.where(constraint(w), cm.logp(w, data), -jnp.inf)  # noqa: E731
        import blackjax  # here, not at import: importing blackjax starts JAX's backend (device count)

        kernel = blackjax.hmc.build_kernel()

        def one(key, w):
            state = blackjax.hmc.init(w, logdensity)

            def step(carry, k):
                st, acc = carry
                st, info = kernel(k, st, logdensity, step_size, inv_mass, settings.leapfrog_steps)
                return (st, acc + info.acceptance_rate), None

            (state, acc), _ = jax.lax.scan(step, (state, 0.0), jax.random.split(key, settings.mcmc_steps))
            return state.position, acc / settings.mcmc_steps

        return jax.vmap(one)(keys, x)

    return jax.jit(loglik_all), jax.jit(move)


@dataclass
class SMCState:
    """Where a data-tempered SMC run stands: particles ``x`` (P, dim) at path position ``s`` with their
    normalised log weights, the running log Z, each particle's log-likelihood part at ``s`` (``cur``),
    the HMC step size, the JAX key for the moves and the resampling, and the number of stages taken.
    :func:`smc_init` makes it, :func:`smc_step` advances it by one stage."""

    x: object
    logw: np.ndarray
    log_z: float
    s: float
    cur: np.ndarray
    step_size: float
    key: object
    stages: int = 0


def smc_init(programs, x0, settings: SMCSettings, *, seed: int = 0, log_z0: float = 0.0) -> SMCState:
    """The state at s = 0: prior particles ``x0`` with equal weights and log Z = ``log_z0``;
    ``programs`` = :func:`_programs` (log-likelihood part of every particle, HMC rejuvenation)."""
    loglik_all, _ = programs
    x = jnp.asarray(np.asarray(x0, dtype=float))
    P = x.shape[0]
    return SMCState(
        x=x,
        logw=np.full(P, -math.log(P)),
        log_z=float(log_z0),
        s=0.0,
        cur=np.asarray(loglik_all(x, 0.0)),
        step_size=settings.initial_step_size,
        key=jax.random.key(seed),
    )


def _next_s(state: SMCState, target: float, loglik_all, settings: SMCSettings):
    """Step 2 of the algorithm: the largest s' ≤ ``target`` whose reweighting keeps the conditional
    ESS ≥ ``cess_target``·P (bisection), and every particle's log-likelihood part at s'."""
    P = state.x.shape[0]
    nxt = np.asarray(loglik_all(state.x, target))
    if conditional_ess(state.logw, nxt - state.cur) >= settings.cess_target * P:
        return float(target), nxt
    lo, hi = state.s, float(target)
    new = None
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        cand = np.asarray(loglik_all(state.x, mid))
        if conditional_ess(state.logw, cand - state.cur) >= settings.cess_target * P:
            lo, new = mid, cand
        else:
            hi = mid
        if hi - lo < 1e-6 * max(1.0, hi):
            break
    if new is None or lo <= state.s:  # even a tiny step collapses the weights: take it anyway
        lo = state.s + (hi - state.s) * 1e-3
        new = np.asarray(loglik_all(state.x, lo))
    return lo, new


def smc_step(
    state: SMCState, target: float, programs, settings: SMCSettings, canonicalise: Callable | None = None
) -> tuple[SMCState, dict]:
    """One stage towards ``target`` (steps 2–5 of the module docstring: next s, reweight and update
    log Z, resample when the ESS is low, HMC rejuvenation with the particles' variances as mass
    matrix); returns the new state and the stage's diagnostics {s, ess, resampled, acceptance,
    step_size}.  The numerics are those of every earlier version (same order of operations)."""
    loglik_all, move = programs
    P = state.x.shape[0]
    s_new, new = _next_s(state, target, loglik_all, settings)
    u = new - state.cur
    u = np.where(np.isfinite(u), u, -np.inf)
    m = np.max(state.logw + u)
    log_z = state.log_z + float(m + np.log(np.sum(np.exp(state.logw + u - m))))
    logw = _normalise(state.logw + u)
    x, key, step = state.x, state.key, state.step_size
    resampled = ess(logw) < settings.resample_threshold * P
    if resampled:
        key, k = jax.random.split(key)
        x = x[systematic_resample(k, logw)]
        logw = np.full(P, -math.log(P))
    acc = math.nan
    if settings.mcmc_steps:
        W = np.exp(logw)
        xn = np.asarray(x) if canonicalise is None else canonicalise(np.asarray(x))
        x = jnp.asarray(xn)
        mean = W @ xn
        var = np.maximum(W @ (xn - mean) ** 2, 1e-8)
        key, k = jax.random.split(key)
        x, a = move(jax.random.split(k, P), x, s_new, step, jnp.asarray(var))
        acc = float(np.mean(np.asarray(a)))
        step *= math.exp(np.clip(acc - settings.target_accept, -0.5, 0.5))
    new_state = SMCState(
        x=x,
        logw=logw,
        log_z=log_z,
        s=s_new,
        cur=np.asarray(loglik_all(x, s_new)),
        step_size=step,
        key=key,
        stages=state.stages + 1,
    )
    stage = {"s": s_new, "ess": ess(logw), "resampled": resampled, "acceptance": acc, "step_size": step}
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
        out_w.append(state.logw.copy())
        out_z.append(state.log_z)
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
