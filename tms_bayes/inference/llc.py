"""Local learning coefficient estimation (SPEC 3; Lau et al. 2023).

    λ̂(w*) = nβ (E_w[L_n(w)] − L_n(w*)),   w ~ p(w) ∝ exp(−nβ L_n(w) − (γ/2)‖w − w*‖²),

with L_n the per-sample negative log-likelihood (for the TMS model with σ² = 1/2 this is the
unhalved loss of SPEC 1; constants cancel in the difference) and β = 1/log n, so nβ = n/log n,
unless set.

The localised tempered posterior is built **as a PyMC model** (:func:`localized_model`): the
model is cloned, its likelihood tempered to β and its prior replaced by the localisation, through two
``pm.Potential`` terms — so every PyMC sampler (``pm.sample`` too) sees the same density.  The model
must be built with likelihood weight 1 (tms-bayes builders: ``beta=1``).

Samplers:

- ``"nuts"``: the compile-once blackjax NUTS engine of the sweeps, chains sharded across cores;
- ``"rmsprop_sgld"``: the same move preconditioned by RMSProp's running average of squared gradients
  (devinterp's ``rmsprop_sgld``; :func:`sgld_trace` gives the update);
- ``"sgld"``: Δw = −(ε/2)[nβ ∇L_B(w) + γ(w − w*)] + √ε ξ (Welling & Teh; devinterp's update),
  chains vmapped; full batch, or minibatches of ``batch_size`` drawn without replacement each step
  (through the model's padding mask, so the same compiled log-likelihood serves both).  Full batch
  costs one gradient per step: the full-batch value and gradient at the new point serve the loss
  trace, the MALA diagnostic and the next step's drift.

Phase confinement (TMS): a k-gon with a dead column is left without a barrier through the column's
bias (:func:`tms_bayes.theory.metastable_exit`); ``confine`` = κ localises the dead columns with
strength κ (flat directions for k ≥ 5, which contribute nothing to λ; the bias only for the 4-gon
family), and every TMS estimate reports the
*leak* — the share of draws whose k-gon label differs from w*'s — so a λ̂ that mixes phases is never
silent.

Diagnostics: λ̂ per chain, mean and standard error (ESS-based, from ArviZ on the loss traces),
burn-in removed, a stationarity z-score (first vs last third of each trace), the MALA acceptance
probability of SGLD's proposals under the full-batch target (low = step too large), warnings when
λ̂ < 0 or when draws fall below L_n(w*) (w* is not a local minimum).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import arviz as az
import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from .. import __version__, _validate
from .._jax import jax, jnp
from .._stats import mean_and_se
from .compile import compile_expression, compile_model, ravel_point

__all__ = [
    "llc_standard_error",
    "localized_model",
    "estimate_llc",
    "calibrate_llc",
    "sgld_trace",
    "LLCResult",
]


def sgld_trace(
    key, w_star, nll_and_grad, *, eps, gamma, beta, steps, batch_grad=None, rmsprop=None, positions=False
):
    """One SGLD chain of ``steps`` steps targeting exp(−β·nll(w) − γ/2‖w − w*‖²) (module docstring).

    Pure and traceable (vmap it over chains, runs or checkpoints).  ``nll_and_grad(w)`` returns the
    full-batch n·L_n(w) and its gradient; ``batch_grad(w, key)``, if given, an unbiased minibatch
    estimate of that gradient used for the drift.  Full batch costs one gradient per step: the
    full-batch value and gradient at the new point serve the loss trace, the MALA diagnostic and the
    next drift.  ``gamma`` may be a vector (a per-coordinate localisation: the phase confinement).

    ``rmsprop=(α, δ, n)`` preconditions the move (RMSProp-SGLD; Li et al. 2016, devinterp's
    ``rmsprop_sgld``): with g_t the gradient of the per-sample loss L (the drift's likelihood gradient
    divided by nβ),

        V_t = α V_{t−1} + (1 − α) g_t²,   G_t = 1/(δ + √V_t),
        Δw = −(ε/2) G_t [nβ g_t + γ(w − w*)] + √(ε G_t) ξ,

    V_0 = 0 and no bias correction (devinterp 1.x: α = 0.99, δ = 0.1).  The time-varying G's
    correction term Γ is omitted, as in devinterp and the Hitchcock–Hoogland benchmark.  Returns
    (nll per step, MALA acceptance probability per step) of the moves made, and the positions
    (steps, dim) when ``positions``."""
    if rmsprop is not None:
        alpha, delta, n_rows = rmsprop

    def full(w):
        v, g = nll_and_grad(w)
        loc = (
            0.5 * gamma * jnp.sum((w - w_star) ** 2)
            if jnp.ndim(gamma) == 0
            else 0.5 * jnp.sum(gamma * (w - w_star) ** 2)
        )
        return v, beta * v + loc, beta * g + gamma * (w - w_star)

    def step(state, k):
        w, u, g, V = state  # position, −log target and its gradient (full batch), RMSProp average
        kb, kn = jax.random.split(k)
        d = g if batch_grad is None else beta * batch_grad(w, kb) + gamma * (w - w_star)
        if rmsprop is None:
            G = 1.0
        else:
            lik = d - gamma * (w - w_star)  # nβ ∇L (minibatch estimate when minibatching)
            V = alpha * V + (1 - alpha) * (lik / (beta * n_rows)) ** 2
            G = 1.0 / (delta + jnp.sqrt(V))
        w_new = w - 0.5 * eps * G * d + jnp.sqrt(eps * G) * jax.random.normal(kn, w.shape)
        nll_new, u_new, g_new = full(w_new)
        # MALA acceptance of this move under the full-batch target, G held fixed (a diagnostic)
        fwd = -jnp.sum((w_new - (w - 0.5 * eps * G * g)) ** 2 / G) / (2 * eps)
        bwd = -jnp.sum((w - (w_new - 0.5 * eps * G * g_new)) ** 2 / G) / (2 * eps)
        out = (nll_new, jnp.minimum(1.0, jnp.exp(u - u_new + bwd - fwd)))
        return (w_new, u_new, g_new, V), (*out, w_new) if positions else out

    _, u0, g0 = full(w_star)
    state = (w_star, u0, g0, jnp.zeros_like(w_star))
    return jax.lax.scan(step, state, jax.random.split(key, steps))[1]


def llc_standard_error(excess) -> tuple[float, float, float]:
    """λ̂ and its one standard error from the kept trace of nβ (L_n(w_t) − L_n(w*)), (chains, steps):

        λ̂ = mean over chains and steps,   SE = sd / √ESS,

    sd over every kept step and ESS ArviZ's "mean" effective sample size over the chains (NaN with ≤ 3
    steps).  Every λ̂ in tms-bayes (estimate_llc, SGD trajectories) reports this SE.  Returns
    (λ̂, SE, ESS)."""
    return mean_and_se(excess)


def _n_observations(model: pm.Model) -> int:
    if "n" in model.named_vars:  # population models carry n as data
        return int(round(float(model["n"].get_value())))
    if "mask" in model.named_vars:
        return int(round(float(np.sum(model["mask"].get_value()))))
    if model.observed_RVs:
        return int(np.prod(model.rvs_to_values[model.observed_RVs[0]].type.shape or (1,)))
    raise ValueError("cannot infer n from the model (no 'mask' data and no observed variable); pass n=")


def localized_model(
    model: pm.Model,
    w_star: dict,
    *,
    gamma: float = 1.0,
    nbeta: float | None = None,
    n: int | None = None,
    walls: dict | None = None,
    confine: float = 0.0,
) -> tuple[pm.Model, float]:
    """The localised tempered posterior of ``model`` at ``w_star`` as a new PyMC model (module
    docstring).  Returns (model, nβ).

    ``walls`` {parameter: boolean mask} with ``confine`` = κ > 0 add the phase confinement
    −(κ/2) Σ_masked (w_i − w*_i)², a localiser that is strong on the masked coordinates only: the dead
    columns of a TMS k-gon (:func:`tms_exit_walls`), the coordinates through which the phase is left.
    For k ≥ 5, L does not depend on them near w* (flat directions that contribute nothing to λ), so the
    confinement changes λ̂ only by what leaks.
    """
    from pymc.model.fgraph import clone_model

    _require_unfixed(model)
    gamma = _validate.positive("gamma", gamma)
    n = _validate.integer("n", n, minimum=2) if n is not None else _n_observations(model)
    if n < 2:
        raise ValueError(f"n must be >= 2 for β = 1/log n, got {n}")
    nbeta = _validate.positive("nbeta", nbeta) if nbeta is not None else n / math.log(n)
    beta = nbeta / n
    names = [rv.name for rv in model.free_RVs]
    missing = [k for k in names if k not in w_star]
    if missing:
        raise ValueError(
            f"w_star must give every parameter of the model; missing {missing} (parameters: {names})"
        )
    walls = {} if walls is None else dict(walls)
    confine = _validate.positive("confine", confine, strict=False)
    local = clone_model(model)
    with local:
        loglik = local.logp(vars=[*local.observed_RVs, *local.potentials], jacobian=False)
        logprior = local.logp(vars=local.free_RVs, jacobian=True)
        dist = 0.0
        for rv in local.free_RVs:
            ws = np.asarray(w_star[rv.name], dtype=float)
            value = local.rvs_to_values[rv]
            if tuple(ws.shape) != tuple(local.initial_point()[value.name].shape):
                raise ValueError(
                    f"w_star[{rv.name!r}] must have shape {local.initial_point()[value.name].shape}, "
                    f"got {ws.shape}"
                )
            if not np.all(np.isfinite(ws)):
                raise ValueError(f"w_star[{rv.name!r}] must be finite")
            dist = dist + pt.sum((value - ws) ** 2)
        pm.Potential("llc_tempering", (beta - 1.0) * loglik)
        pm.Potential("llc_localization", -logprior - 0.5 * gamma * dist)
        if confine > 0 and walls:
            wall = 0.0
            for name, mask in walls.items():
                value = local.rvs_to_values[local[name]]
                m = np.asarray(mask, dtype=bool)
                if m.shape != tuple(local.initial_point()[value.name].shape):
                    raise ValueError(f"walls[{name!r}] must have the shape of {name}, got {m.shape}")
                ws = np.asarray(w_star[name], dtype=float)
                wall = wall + pt.sum(pt.switch(m, (value - ws) ** 2, 0.0))
            pm.Potential("llc_confinement", -0.5 * confine * wall)
    local.llc_settings = {"gamma": gamma, "nbeta": nbeta, "n": n, "beta": beta, "confine": confine}
    local.llc_loglik = loglik
    return local, nbeta


def _require_unfixed(model: pm.Model) -> None:
    """Refuse a gauge-fixed TMS model: λ̂'s localiser and phase walls are written in the weights W."""
    gauge = getattr(model, "tms_settings", {}).get("gauge", "none")
    if gauge != "none":
        raise ValueError(
            f"λ̂ needs the TMS model in its own weights W (gauge='none'), got gauge={gauge!r}: the localiser "
            "½γ‖w − w*‖² and the phase walls are written in W; build the model with "
            "tms_model(X, gauge='none') (the gauge only speeds up posterior sampling and changes no "
            "rotation-invariant quantity)"
        )


def _tms_phase(model: pm.Model, w_star: dict) -> str | None:
    """w*'s k-gon label when ``model`` is a TMS model at r = 2, else None."""
    if getattr(model, "tms_settings", {}).get("r") != 2:
        return None
    from ..theory.regions import label_samples

    return str(label_samples(np.asarray(w_star["W"]), np.asarray(w_star["b"])))


def tms_exit_walls(W, b) -> dict:
    """The coordinates through which a TMS point at r = 2 leaves its phase: its dead columns' biases,
    and their weights where L is flat in them ({"W": mask (r, c), "b": mask (c,)}).  Through the bias a
    k-gon becomes k^{σ+1} without a barrier (:func:`tms_bayes.theory.metastable_exit`); through the
    weights, at small nβ, a (k+1)-gon.  L is flat in a dead column's weights only while the outputs it
    feeds stay off (W_i·W_j < −b_i): true near W_j = 0 when every vertex bias is negative (k ≥ 5), false
    for the 4-gon family (b = 0, L grows like |W_j|²/18), whose dead columns get the bias wall only —
    a localiser on curved coordinates would bias λ̂."""
    from ..theory.regions import column_roles

    W, b = np.asarray(W, dtype=float), np.asarray(b, dtype=float)
    _, dead, _, vertex = column_roles(np, W[None], b[None])
    dead, vertex = dead[0], vertex[0]
    flat = bool(vertex.any()) and float(np.max(b[vertex])) < 0
    return {"W": np.broadcast_to(dead & flat, W.shape).copy(), "b": dead}


@dataclass
class LLCResult:
    """λ̂ with its error, per-chain values, traces and diagnostics."""

    llc_mean: float
    llc_se: float
    llc_per_chain: np.ndarray
    loss_star: float
    idata: az.InferenceData
    diagnostics: dict
    warnings: list[str] = field(default_factory=list)

    def __str__(self):
        return (
            f"λ̂ = {self.llc_mean:.4f} ± {self.llc_se:.4f} ({len(self.llc_per_chain)} chains, "
            f"{self.diagnostics['sampler']})"
        )


def estimate_llc(
    model: pm.Model,
    w_star: dict,
    *,
    sampler: str = "nuts",
    gamma: float = 1.0,
    nbeta: float | None = None,
    chains: int = 4,
    draws: int = 500,
    tune: int = 300,
    burn_in: int | None = None,
    step_size: float = 1e-3,
    batch_size: int | None = None,
    refine: bool = False,
    target_accept: float = 0.8,
    confine: float | None = None,
    rmsprop_alpha: float = 0.99,
    rmsprop_eps: float = 0.1,
    seed: int = 0,
) -> LLCResult:
    """Estimate λ(w*) for ``model`` (built with likelihood weight 1) — module docstring.

    NUTS: ``tune`` adaptation + ``draws`` kept transitions per chain.  SGLD and RMSProp-SGLD
    (``"rmsprop_sgld"``, α = ``rmsprop_alpha``, δ = ``rmsprop_eps``: :func:`sgld_trace`): ``draws``
    steps per chain with step ``step_size`` (ε); the first ``burn_in`` (default draws // 5) are
    dropped; ``batch_size`` None means full batch.  Initial points are w*.

    **Phase confinement** (TMS at r = 2): ``confine`` = κ > 0 adds −(κ/2) Σ (w_i − w*_i)² over the dead
    columns' weights and biases of w* (:func:`tms_exit_walls`, :func:`localized_model`), the
    coordinates through which a k-gon leaves its critical set (without a barrier through the bias:
    :func:`tms_bayes.theory.metastable_exit`).  For every TMS estimate the draws are labelled
    (:func:`tms_bayes.theory.regions.label_samples`) and ``diagnostics["leak"]`` is the share of kept
    draws whose label differs from w*'s; ``diagnostics["metastable_exit"]`` names the exit, if any.

    ``refine=True`` first moves w* to the nearest local minimum of this dataset's L_n (BFGS with exact
    JAX gradients).  A critical point of the population loss L is not one of L_n: at finite n the
    sampler slides to the empirical minimum and λ̂ is biased low, even negative (diagnosed by
    ``share_below_w_star``).  The refined point is what the estimate is "at"; its distance from the
    given w* is reported.

    Steps: localise (:func:`localized_model`), optionally refine w* (:func:`_refine`), draw the
    losses n·L_n(w_t) (:func:`_nuts_losses` or :func:`_sgld_losses`), then λ̂, its SE and the
    diagnostics (:func:`_summarise`).
    """
    _validate.choice("sampler", sampler, SAMPLERS)
    chains = _validate.integer("chains", chains, minimum=1)
    draws = _validate.integer("draws", draws, minimum=10)
    _require_unfixed(model)
    phase = _tms_phase(model, w_star)
    walls = {}
    if confine is not None and _validate.positive("confine", confine, strict=False) == 0:
        confine = None  # κ = 0: no confinement
    if confine is not None:
        confine = float(confine)
        if phase is None:
            raise ValueError(
                "confine needs a TMS model at r = 2 (its phases define the walls); got a model without "
                "tms_settings r = 2 — pass walls to localized_model for other models"
            )
    local, nbeta, walls = _localise(model, w_star, gamma, nbeta, confine)
    n, beta, gamma = local.llc_settings["n"], local.llc_settings["beta"], local.llc_settings["gamma"]
    cm = compile_model(local)
    nll_fn = compile_expression(local, -local.llc_loglik, cm)  # n·L_n (+ const): the model's NLL at weight 1
    data = {k: jnp.asarray(v) for k, v in cm.data.items()}
    w0 = jnp.asarray(ravel_point(cm, {cm.param_names[i]: w_star[name] for i, name in enumerate(cm.rv_names)}))
    moved, left_phase = 0.0, False
    if refine:
        w0, moved, left_phase = _refine(cm, nll_fn, data, w0, phase)
        w_star = dict(zip(cm.rv_names, cm.unravel(np.asarray(w0)).values()))
        phase = _tms_phase(model, w_star)  # the phase the estimate is at (refining may leave the first)
        local, nbeta, walls = _localise(model, w_star, gamma, nbeta, confine)
        cm = compile_model(local)
        nll_fn = compile_expression(local, -local.llc_loglik, cm)
    nll_star = float(nll_fn(w0, data))
    key = jax.random.key(seed)
    if sampler == "nuts":
        tune = _validate.integer("tune", tune, minimum=1)
        nll, stats, burn, accept, divergent, grad_evals, positions = _nuts_losses(
            cm, nll_fn, data, w0, key, chains=chains, draws=draws, tune=tune, target_accept=target_accept
        )
    else:
        eps = _validate.positive("step_size", step_size)
        burn = (
            draws // 5
            if burn_in is None
            else _validate.integer("burn_in", burn_in, minimum=0, maximum=draws - 2)
        )
        if batch_size is not None:
            batch_size = _validate.integer("batch_size", batch_size, minimum=1, maximum=n)
        rmsprop = None
        if sampler == "rmsprop_sgld":
            alpha = _validate.positive("rmsprop_alpha", rmsprop_alpha)
            if alpha >= 1:
                raise ValueError(f"rmsprop_alpha must be in (0, 1), got {rmsprop_alpha}")
            rmsprop = (alpha, _validate.positive("rmsprop_eps", rmsprop_eps), n)
        # the confinement enters SGLD as a per-coordinate localisation γ + κ·[coordinate walled]
        gamma_w = gamma if not walls else jnp.asarray(gamma + confine * _wall_vector(cm, walls))
        nll, stats, accept, divergent, grad_evals, positions = _sgld_losses(
            nll_fn, data, w0, key, n=n, eps=eps, gamma=gamma_w, beta=beta, chains=chains, draws=draws,
            batch_size=batch_size, burn=burn, rmsprop=rmsprop, positions=phase is not None,
        )  # fmt: skip
    attrs = {
        "sampler": sampler,
        "gamma": gamma,
        "nbeta": nbeta,
        "n": n,
        "beta": beta,
        "chains": chains,
        "draws": draws,
        "tune": tune if sampler == "nuts" else 0,
        "target_accept": target_accept if sampler == "nuts" else float("nan"),
        "step_size": step_size if sampler != "nuts" else float("nan"),
        "batch_size": batch_size or 0 if sampler != "nuts" else 0,
        "burn_in": burn,
        "seed": seed,
        "refine": int(refine),
        "refined_distance": moved,
        "refine_left_phase": int(left_phase),
        "confine": float(confine or 0.0),
        "rmsprop_alpha": rmsprop_alpha if sampler == "rmsprop_sgld" else float("nan"),
        "rmsprop_eps": rmsprop_eps if sampler == "rmsprop_sgld" else float("nan"),
    }
    leak, labels, exit_ = _leak(cm, phase, positions, burn)
    if phase is not None:
        attrs.update(phase=phase, leak=leak, metastable_exit=exit_[0] if exit_ else "")
    diag = {
        "sampler": sampler,
        "refined_distance": moved,
        "refine_left_phase": left_phase,
        "acceptance": accept,
        "burn_in": burn,
        "divergent": divergent,
        "grad_evals": grad_evals,
        "phase": phase,
        "leak": leak,
        "labels": labels,
        "metastable_exit": exit_,
        "walls": walls,
    }
    return _summarise(np.asarray(nll)[:, burn:], nll_star, stats, burn, attrs, diag, step_size=step_size)


SAMPLERS = ("nuts", "sgld", "rmsprop_sgld")


def _localise(model, w_star, gamma, nbeta, confine):
    """The localised model, nβ and the walls used (empty without confinement)."""
    walls = tms_exit_walls(w_star["W"], w_star["b"]) if confine else {}
    local, nbeta = localized_model(
        model, w_star, gamma=gamma, nbeta=nbeta, walls=walls, confine=confine or 0.0
    )
    return local, nbeta, walls


def _wall_vector(cm, walls) -> np.ndarray:
    """The walls {parameter: mask} as a flat 0/1 vector in ``cm``'s layout."""
    point = {}
    for i, name in enumerate(cm.rv_names):
        shape = cm.param_shapes[i]
        point[cm.param_names[i]] = np.asarray(walls[name], dtype=float) if name in walls else np.zeros(shape)
    return ravel_point(cm, point)


def _leak(cm, phase, positions, burn):
    """(share of kept draws whose k-gon label differs from w*'s, labels (chain, draw), the metastable
    exit of w*'s phase or None); (NaN, None, None) for models that are not TMS at r = 2."""
    if phase is None or positions is None or phase == "unclassified":
        return float("nan"), None, None
    from ..theory import metastable_exit
    from ..theory.regions import label_samples

    p = cm.unravel(np.asarray(positions)[:, burn:])
    labels = label_samples(p["W"], p["b"])
    exit_ = metastable_exit(phase, int(p["b"].shape[-1]))
    return float(np.mean(labels != phase)), labels, exit_


def _refine(cm, nll_fn, data, w0, phase):
    """w* moved to the nearest local minimum of this dataset's L_n (BFGS, exact JAX gradients); a TMS
    point (r = 2, ``phase`` its k-gon label from :func:`_tms_phase`) is kept inside its phase (issue 13).
    Returns (w, distance moved, left phase); ValueError if it moved more than 0.5 (w* is not near a local
    minimum)."""
    from .minimise import minimise_in_phase, tms_phase_indicator

    inside = tms_phase_indicator(cm, phase) if phase not in (None, "unclassified") else None
    f = jax.jit(jax.value_and_grad(nll_fn))
    w_ref, _, info = minimise_in_phase(f, np.asarray(w0), inside, args=(data,), gtol=1e-8, maxiter=2000)
    moved, left_phase = info["moved"], info["left_phase"]
    if moved > 0.5:
        raise ValueError(
            f"refining w* moved it by {moved:.3f} (> 0.5): w* is not near a local minimum of L_n; "
            "estimate without refine or check w*"
        )
    return jnp.asarray(w_ref), moved, left_phase


def _nuts_losses(cm, nll_fn, data, w0, key, *, chains, draws, tune, target_accept):
    """n·L_n at every kept NUTS draw of the localised posterior, (chain, draw), chains started at w*.
    Returns (nll, sample stats, burn-in 0, mean acceptance, divergent share, gradient evaluations,
    positions (chain, draw, dim))."""
    from .nuts import ChainSampler, NutsSettings, stack_data

    # one compiled call: warm-up and draws together
    settings = NutsSettings(tune=tune, draws=draws, chunk=tune + draws, target_accept=target_accept)
    sampler = ChainSampler(cm, settings, chains)
    init = jnp.broadcast_to(w0, (chains, cm.dim))
    out, _ = sampler.run(key, init, stack_data(cm.data, chains))
    nll = jax.vmap(jax.vmap(lambda w: nll_fn(w, data)))(out["position"])  # (chain, draw)
    stats = {k: out[k] for k in ("diverging", "tree_depth", "acceptance_rate", "energy", "n_steps")}
    accept = float(np.mean(stats["acceptance_rate"]))
    divergent = float(np.mean(stats["diverging"]))
    # leapfrog steps: counted while sampling, and estimated at the same rate for the adaptation
    grad_evals = int(stats["n_steps"].sum() * (1 + tune / draws))
    return nll, stats, 0, accept, divergent, grad_evals, out["position"]


def _sgld_losses(
    nll_fn,
    data,
    w0,
    key,
    *,
    n,
    eps,
    gamma,
    beta,
    chains,
    draws,
    batch_size,
    burn,
    rmsprop=None,
    positions=False,
):
    """n·L_n along ``chains`` vmapped SGLD chains of ``draws`` steps from w* (:func:`sgld_trace`), full
    batch or minibatches of ``batch_size`` rows drawn without replacement through the padding mask.
    Returns (nll, stats with the MALA acceptance, mean acceptance after burn-in, 0, gradient evaluations,
    positions (chain, step, dim) or None)."""
    mask_full = data.get("mask", None)
    if batch_size is not None and mask_full is None:
        raise ValueError(
            "minibatch SGLD needs a model with a 'mask' data container (tms-bayes builders have one)"
        )
    nll_and_grad = jax.value_and_grad(nll_fn)
    batch_grad = None
    if batch_size is not None:
        rows = jnp.nonzero(mask_full, size=n)[0]  # the n selected rows, found once

        def batch_grad(w, k):
            pick = jax.random.permutation(k, rows)[:batch_size]
            m = jnp.zeros_like(mask_full).at[pick].set(1.0)
            return nll_and_grad(w, {**data, "mask": m})[1] * (n / batch_size)

    def run_chain(k):
        return sgld_trace(
            k, w0, lambda w: nll_and_grad(w, data), eps=eps, gamma=gamma, beta=beta, steps=draws,
            batch_grad=batch_grad, rmsprop=rmsprop, positions=positions,
        )  # fmt: skip

    nll, acc, *pos = jax.jit(jax.vmap(run_chain))(jax.random.split(key, chains))
    accept = float(np.mean(np.asarray(acc)[:, burn:]))
    # + a full-batch gradient per step for the trace and MALA when minibatching
    grad_evals = chains * draws * (1 if batch_size is None else 2)
    return nll, {"mala_acceptance": np.asarray(acc)}, accept, 0.0, grad_evals, (pos[0] if pos else None)


def _summarise(nll, nll_star, stats, burn, attrs, diag, *, step_size):
    """λ̂ per chain = β (mean_t nll − nll*), λ̂ = their mean, SE = sd/√ESS (:func:`llc_standard_error`),
    the stationarity z-score, the share of draws below L_n(w*) and the warnings; ``nll`` is the kept
    trace (chain, draw) of n·L_n.  Returns the :class:`LLCResult`."""
    n, beta, chains, nbeta = attrs["n"], attrs["beta"], attrs["chains"], attrs["nbeta"]
    trace = nll / n  # L_n per draw
    loss_star = nll_star / n
    llc_chain = beta * (nll.mean(axis=1) - nll_star)
    _, se, ess = llc_standard_error(beta * (nll - nll_star))
    third = max(trace.shape[1] // 3, 1)
    first, last = trace[:, :third].mean(), trace[:, -third:].mean()
    z = (last - first) / (np.std(trace) / math.sqrt(max(ess / 3, 1.0)) + 1e-300)
    below = float(np.mean(nll < nll_star))
    diag = {
        **diag,
        "ess": ess,
        "stationarity_z": float(z),
        "share_below_w_star": below,
    }
    llc_mean = float(np.mean(llc_chain))
    issues = _llc_warnings(nll, nll_star, llc_mean, below, z, diag, chains=chains, nbeta=nbeta,
                           step_size=step_size)  # fmt: skip
    for msg in issues:
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
    head = list(attrs)[: list(attrs).index("burn_in") + 1]  # the order files have always had
    attrs = {
        **{k: attrs[k] for k in head},
        "llc_mean": llc_mean,
        "llc_se": se,
        "loss_star": loss_star,
        **{k: v for k, v in attrs.items() if k not in head},
        "tms_bayes_version": __version__,
        "formula": (
            "llc = n*beta*(E[L_n] - L_n(w*)), "
            "localized tempered posterior exp(-n*beta*L_n - gamma/2 |w - w*|^2)"
        ),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = az.from_dict(
            posterior={"L_n": trace, "llc_draw": beta * (nll - nll_star)},
            sample_stats={k: v[:, burn:] for k, v in stats.items()},
            attrs=attrs,
        )
    idata.posterior.attrs.update(attrs)
    return LLCResult(llc_mean, se, llc_chain, loss_star, idata, diag, issues)


def _llc_warnings(nll, nll_star, llc_mean, below, z, diag, *, chains, nbeta, step_size) -> list[str]:
    """The estimate's warnings: divergence, λ̂ < 0, draws below L_n(w*), a non-stationary trace, a low
    SGLD MALA acceptance, NUTS divergences."""
    issues = []
    if not np.all(np.isfinite(nll)):
        issues.append(
            f"the sampler diverged (non-finite loss in {int(np.sum(~np.isfinite(nll).all(axis=1)))} of "
            f"{chains} chains): the step size is too large for nβ = {nbeta:.4g}"
        )
    if llc_mean < 0:
        issues.append(
            f"λ̂ = {llc_mean:.3f} < 0: w* is not a local minimum of L_n, "
            "or the sampler left its neighbourhood"
        )  # fmt: skip
    if below > 0.5:
        issues.append(
            f"{100 * below:.0f}% of draws have L_n below L_n(w*): w* is not a local minimum "
            "(λ̂ is then not a learning coefficient)"
        )
    if abs(z) > 4:
        issues.append(
            f"the loss trace is not stationary (first vs last third z = {z:.1f}): "
            "more burn-in or a smaller step"
        )
    if diag.get("leak", 0.0) > 0.05:
        names, counts = np.unique(diag["labels"], return_counts=True)
        where = ", ".join(
            f"{nm} {c / counts.sum():.0%}" for nm, c in sorted(zip(names, counts), key=lambda t: -t[1])
        )
        target = (
            f"; its critical set is left for {diag['metastable_exit'][0]} without a barrier"
            if diag["metastable_exit"]
            else ""
        )
        issues.append(
            f"{100 * diag['leak']:.0f}% of draws left phase {diag['phase']} (draws: {where}){target}: λ̂ "
            "mixes phases; confine the sampler to the phase (confine=) or report the value as metastable"
        )
    if diag["sampler"] != "nuts" and diag["acceptance"] < 0.5:
        issues.append(
            f"SGLD's MALA acceptance is {diag['acceptance']:.2f} < 0.5: the step size ε = {step_size:g} "
            "is too large for this posterior"
        )
    if diag["divergent"] > 0.01:
        issues.append(
            f"{100 * diag['divergent']:.1f}% of NUTS transitions diverged: the localised posterior has "
            "regions NUTS cannot resolve (raise target_accept)"
        )
    return issues


def calibrate_llc(
    model: pm.Model,
    w_star: dict,
    *,
    gammas=(1.0, 10.0, 100.0),
    step_sizes=(1e-4, 1e-3),
    sampler: str = "sgld",
    reference: float | None = None,
    progress: bool = True,
    **kwargs,
) -> xr.Dataset:
    """λ̂ over a grid of localisation strengths γ and (SGLD) step sizes ε, to choose them.

    Every other argument is passed to :func:`estimate_llc`.  For NUTS the step size is adapted, so
    only γ is swept (``step_size`` has length 1, NaN).  Returns a Dataset over (gamma, step_size)
    with λ̂, its standard error, the acceptance (MALA for SGLD), the stationarity z-score, the share
    of draws below L_n(w*) and the number of warnings; ``reference`` (a known λ) is stored in attrs
    and drawn by :func:`tms_bayes.analysis.plots.llc_calibration`.

    What to look for (Lau et al. 2023): a plateau of λ̂ in ε below the step where acceptance drops,
    and in γ between "too weak" (chains leave w*'s basin: negative λ̂, draws below L_n(w*)) and
    "too strong" (the localisation, not the loss, confines the draws: λ̂ shrinks towards 0).
    """
    from tqdm.auto import tqdm

    _validate.choice("sampler", sampler, SAMPLERS)
    gammas = [_validate.positive("gamma", g) for g in np.atleast_1d(gammas)]
    steps = (
        [float("nan")]
        if sampler == "nuts"
        else [_validate.positive("step_size", e) for e in np.atleast_1d(step_sizes)]
    )
    names = ("llc_mean", "llc_se", "acceptance", "stationarity_z", "share_below_w_star", "n_warnings")
    out = {k: np.full((len(gammas), len(steps)), np.nan) for k in names}
    bar = tqdm(total=len(gammas) * len(steps), desc="λ̂ calibration", unit="fit", disable=not progress)
    settings = {}
    for i, g in enumerate(gammas):
        for j, e in enumerate(steps):
            extra = {} if sampler == "nuts" else {"step_size": e}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                res = estimate_llc(model, w_star, sampler=sampler, gamma=g, **extra, **kwargs)
            d = res.diagnostics
            for k, v in (
                ("llc_mean", res.llc_mean),
                ("llc_se", res.llc_se),
                ("acceptance", d["acceptance"]),
                ("stationarity_z", d["stationarity_z"]),
                ("share_below_w_star", d["share_below_w_star"]),
                ("n_warnings", len(res.warnings)),
            ):
                out[k][i, j] = v
            settings = {
                k: v
                for k, v in res.idata.posterior.attrs.items()
                if k not in ("gamma", "step_size", "llc_mean", "llc_se")
            }
            bar.update()
    bar.close()
    ds = xr.Dataset(
        {k: (("gamma", "step_size"), v) for k, v in out.items()}, coords={"gamma": gammas, "step_size": steps}
    )
    ds.attrs.update(settings)
    ds.attrs["reference_lambda"] = float("nan") if reference is None else float(reference)
    return ds
