"""Turn a PyMC model into one JAX log density whose data are arguments.

PyMC's own JAX samplers bake ``pm.Data`` values into the graph as constants, so every new n or
dataset means a new JAX program and a new compilation.  Here every ``pm.Data`` container of the model
(data, padding mask, tempering β) is replaced by a symbolic input before the graph is converted with
PyMC's ``get_jaxified_graph``; the result is a pure function

    logp(w_flat, data) -> float,   loss(w_flat, data) -> L_n,   pointwise(w_flat, data) -> (N,)

that one ``jax.jit`` compiles once for a whole sweep.  ``pointwise`` is the untempered log-likelihood
ℓ_k = log p(x_k | w) of each row of the model's observed variable (summed over its other axes): what
ArviZ's ``log_likelihood`` group holds, for WAIC, LOO and WBIC.  The PyMC model stays the single source of
truth: this is its own ``model.logp()`` graph (value variables in the unconstrained space, Jacobians
included), not a re-implementation.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc.sampling.jax import get_jaxified_graph
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.replace import clone_replace

from .._jax import jnp

__all__ = ["CompiledModel", "compile_model"]


@dataclass(frozen=True)
class CompiledModel:
    """A PyMC model's log density and L_n as JAX functions of (flat parameters, data dict)."""

    param_names: tuple[str, ...]  # value-variable names, in flat order
    rv_names: tuple[str, ...]  # the free random variables behind them, same order
    param_shapes: tuple[tuple[int, ...], ...]
    data_names: tuple[str, ...]
    data: dict[str, np.ndarray]  # the model's current data values (defaults for every argument)
    _logp: Callable
    _loss: Callable | None
    _pointwise: Callable | None = None
    observed_name: str | None = None  # the observed variable behind ``pointwise``
    point_names: tuple[str, ...] = ()  # free random variables (constrained) then Deterministics
    _point: Callable | None = None
    # model.sufficient_likelihood: () -> (data -> statistics, (params, data, statistics) -> the same
    # log density as _logp), converted on first use (most models never need it: it costs ~0.5 s)
    _sufficient: Callable | None = None
    _check_data: Callable | None = None  # refuses data the sufficient form does not hold for

    @property
    def dim(self) -> int:
        return int(sum(int(np.prod(s)) for s in self.param_shapes))

    def unravel(self, flat):
        """Split a flat vector (..., dim) into {name: array (..., *shape)} (value-variable space)."""
        out, i = {}, 0
        lead = flat.shape[:-1]
        for name, shape in zip(self.param_names, self.param_shapes):
            size = int(np.prod(shape))
            out[name] = flat[..., i : i + size].reshape(tuple(lead) + tuple(shape))
            i += size
        return out

    def _args(self, flat, data):
        parts = self.unravel(flat)
        return [parts[n] for n in self.param_names] + [data[k] for k in self.data_names]

    def logp(self, flat, data):
        """The model's log density (unconstrained space, Jacobian included) at ``flat``."""
        return self._logp(*self._args(flat, data))[0]

    def logdensity(self, data) -> Callable:
        """``flat ↦`` :meth:`logp` ``(flat, data)`` for one data dict, for a sampler's inner loop.

        For a model with a ``sufficient_likelihood`` (TMS inputs with one non-zero entry per row:
        :func:`~tms_bayes.models.tms._sorted_likelihood`) the data's sufficient statistics are computed
        here, once, and the returned function evaluates the likelihood from them — O(c² log N) per
        call instead of O(N c²), the same value as the model's own ``logp`` up to rounding.  Call it
        where the data are fixed (outside the sampler's loops), so that the statistics are too."""
        if self._sufficient is None:
            return lambda flat: self.logp(flat, data)
        self.check_data(data)
        stats_fn, logp_stats = self._sufficient_fns
        stats = stats_fn(*[data[k] for k in self.data_names])

        def logp(flat):
            return logp_stats(*self._args(flat, data), *stats)[0]

        return logp

    def check_data(self, data: dict) -> None:
        """Refuse concrete ``data`` that this model's sorted likelihood does not hold for (``ValueError``);
        traced data (inside a ``jit``) cannot be inspected: check them where they enter, as the
        samplers do (``ChainSampler.run``, ``run_smc``) and :meth:`with_data` does."""
        from .._jax import jax

        if self._check_data is None or any(isinstance(v, jax.core.Tracer) for v in data.values()):
            return
        self._check_data({k: np.asarray(v) for k, v in data.items()})

    @cached_property
    def _sufficient_fns(self):
        from .._jax import jax

        # usually first needed inside a trace (a sampler's jit): the converted graph's constants must be
        # concrete arrays, not tracers of that trace (they would leak into every later program)
        with jax.ensure_compile_time_eval():
            return self._sufficient()

    def loss(self, flat, data):
        """The Deterministic ``L_n`` at ``flat``."""
        if self._loss is None:
            raise ValueError("this model records no Deterministic 'L_n'")
        return self._loss(*self._args(flat, data))[0]

    def pointwise(self, flat, data):
        """ℓ_k = log p(x_k | w), one value per row of the observed variable (untempered, unmasked)."""
        if self._pointwise is None:
            raise ValueError(
                "this model has no observed variable, so no pointwise log-likelihood "
                "(its likelihood is a Potential)"
            )
        return self._pointwise(*self._args(flat, data))[0]

    def point(self, flat, data) -> dict:
        """{name: value} of every free random variable (in its own, constrained space) and every
        Deterministic at ``flat``: what a posterior holds (e.g. W of a gauge-fixed model, whose value
        variables are the gauge coordinates)."""
        return dict(zip(self.point_names, self._point(*self._args(flat, data))))

    @cached_property
    def _points(self):
        from .._jax import jax

        return jax.jit(jax.vmap(self.point, in_axes=(0, None)))

    def posterior(self, flat, data) -> tuple[dict, np.ndarray]:
        """:meth:`points` and :meth:`pointwise` of a batch ``flat`` (..., dim) from one compiled program
        (jitted once per model), so the terms they share — the model's forward pass over every row,
        which also gives the Deterministic ``L_n`` — are computed once: what a run file holds
        (``posterior`` and ``log_likelihood``).  Returns ({name: (..., *shape)}, ℓ (..., N))."""
        if self._pointwise is None:
            self.pointwise(flat, data)  # raises, naming why
        return self._batched(self._posterior, flat, data)

    def _batched(self, program, flat, data):
        """``program`` (a vmapped jit over rows of (B, dim)) on ``flat`` (..., dim), outputs as numpy
        arrays with the leading axes of ``flat`` restored."""
        from .._jax import jax

        flat = jnp.asarray(flat)
        lead = flat.shape[:-1]
        out = program(flat.reshape(-1, self.dim), {k: jnp.asarray(v) for k, v in data.items()})
        return jax.tree.map(lambda v: np.asarray(v).reshape(*lead, *np.shape(v)[1:]), out)

    @cached_property
    def _posterior(self):
        from .._jax import jax

        def one(flat, data):
            return self.point(flat, data), self.pointwise(flat, data)

        return jax.jit(jax.vmap(one, in_axes=(0, None)))

    def points(self, flat, data) -> dict:
        """:meth:`point` for a batch ``flat`` (..., dim) (jitted once per model): {name: (..., *shape)}."""
        return self._batched(self._points, flat, data)

    def with_data(self, **data) -> dict:
        """A full data dict: the model's own values, overridden by ``data`` (shapes must match)."""
        out = dict(self.data)
        for k, v in data.items():
            if k not in out:
                raise ValueError(
                    f"unknown data name {k!r}; this model's data are {', '.join(self.data_names)}"
                )
            v = np.asarray(v, dtype=float)
            if v.shape != out[k].shape:
                raise ValueError(
                    f"data {k!r} must have shape {out[k].shape} (the compiled shape), got {v.shape}"
                )
            out[k] = v
        self.check_data(out)
        return out


def _shared_data(model: pm.Model) -> list:
    shared = (
        [v for v in model.data_vars if isinstance(v, SharedVariable)] if hasattr(model, "data_vars") else []
    )
    if not shared:
        shared = [model[name] for name in model.named_vars if isinstance(model[name], SharedVariable)]
    return shared


def compile_expression(model: pm.Model, expr, cm: CompiledModel | None = None) -> Callable:
    """Jaxify a scalar expression of ``model``'s value variables and data containers into
    ``f(w_flat, data) -> value`` with the same conventions as :class:`CompiledModel`.

    ``expr`` may refer to random variables (they are replaced by their value variables).  Pass the
    model's :class:`CompiledModel` as ``cm`` when it exists already (it fixes the flat layout)."""
    value_vars = list(model.value_vars)
    shared = _shared_data(model)
    symbolic = {
        s: pt.tensor(name=f"{s.name}_in", dtype=s.type.dtype, shape=(None,) * s.type.ndim) for s in shared
    }
    expr = model.replace_rvs_by_values([expr])[0]
    fn = get_jaxified_graph(
        inputs=[*value_vars, *symbolic.values()], outputs=[clone_replace(expr, replace=symbolic)]
    )
    cm = cm if cm is not None else compile_model(model)

    def f(w_flat, data):
        return fn(*cm._args(w_flat, data))[0]

    return f


def compile_model(model: pm.Model) -> CompiledModel:
    """Convert ``model`` (see module docstring) into a :class:`CompiledModel`."""
    probe = _probe_blas()  # while the graphs are built
    value_vars = list(model.value_vars)
    shared = _shared_data(model)
    symbolic = {
        s: pt.tensor(name=f"{s.name}_in", dtype=s.type.dtype, shape=(None,) * s.type.ndim) for s in shared
    }

    logp = model.logp(jacobian=True)
    outputs = [logp]
    has_loss = "L_n" in model.named_vars
    if has_loss:
        outputs.append(model.replace_rvs_by_values([model["L_n"]])[0])
    observed = model.observed_RVs[0] if len(model.observed_RVs) == 1 else None
    if observed is not None:
        ell = model.logp(vars=[observed], sum=False)[0]
        outputs.append(ell.sum(axis=tuple(range(1, ell.ndim))) if ell.ndim > 1 else ell)
    replaced = clone_replace(outputs, replace=symbolic)
    inputs = [*value_vars, *symbolic.values()]
    probe.join()
    logp_fn = get_jaxified_graph(inputs=inputs, outputs=[replaced[0]])
    loss_fn = get_jaxified_graph(inputs=inputs, outputs=[replaced[1]]) if has_loss else None
    pointwise_fn = get_jaxified_graph(inputs=inputs, outputs=[replaced[-1]]) if observed is not None else None
    named = [*model.free_RVs, *model.deterministics]
    point_fn = get_jaxified_graph(
        inputs=inputs, outputs=clone_replace(model.replace_rvs_by_values(named), replace=symbolic)
    )

    form = getattr(model, "sufficient_likelihood", None)
    data = {s.name: np.asarray(s.get_value(), dtype=float) for s in shared}
    if form is not None:
        try:  # the model's data may have been replaced (pm.set_data) by data the form does not fit
            form["check_data"](data)
        except ValueError:
            form = None
    ip = model.initial_point()
    return CompiledModel(
        param_names=tuple(v.name for v in value_vars),
        rv_names=tuple(model.values_to_rvs[v].name for v in value_vars),
        param_shapes=tuple(tuple(np.shape(ip[v.name])) for v in value_vars),
        data_names=tuple(s.name for s in shared),
        data=data,
        _logp=logp_fn,
        _loss=loss_fn,
        _pointwise=pointwise_fn,
        observed_name=observed.name if observed is not None else None,
        point_names=tuple(v.name for v in named),
        _point=point_fn,
        _sufficient=None
        if form is None
        else functools.partial(_sufficient, model, form, value_vars, symbolic),
        _check_data=None if form is None else form["check_data"],
    )


def _probe_blas() -> threading.Thread:
    """Resolve PyTensor's BLAS link flags in a thread and return it (join before converting a graph).

    The first graph rewrite of a process reads ``pytensor.config.blas__ldflags``, whose default PyTensor
    finds by compiling test programs with the C compiler: ≈ 0.35 s on a 2-core CPU, spent waiting for
    subprocesses, so the graphs can be built meanwhile.  Later calls find the flags resolved."""
    from pytensor import config

    def resolve():
        try:
            config.blas__ldflags
        except Exception:  # noqa: BLE001  (the conversion resolves them again, and raises there)
            pass

    probe = threading.Thread(target=resolve, name="tms-bayes-blas-probe", daemon=True)
    probe.start()
    return probe


def _sufficient(model: pm.Model, form: dict, value_vars: list, symbolic: dict):
    """(data ↦ statistics, (params, data, statistics) ↦ log density) of ``model.sufficient_likelihood``.

    The model declares a likelihood graph that equals some of its terms (``replaces``: the observed
    variable and the tempering Potential) but is computed from statistics of the data; the log
    density is then the model's remaining terms (prior, Jacobians, other Potentials) plus that graph,
    with the statistics as inputs, so a sampler computes them once per data."""
    replaced = {model[name] for name in form["replaces"]}
    rest = [v for v in (*model.free_RVs, *model.observed_RVs, *model.potentials) if v not in replaced]
    stats = form["stats"]
    placeholders = [
        pt.tensor(name=f"stat{i}_in", dtype=g.type.dtype, shape=(None,) * g.type.ndim)
        for i, g in enumerate(stats)
    ]
    logp = model.logp(vars=rest, jacobian=True) + form["loglik"](*placeholders)
    logp = clone_replace(model.replace_rvs_by_values([logp])[0], replace=symbolic)
    stats_fn = get_jaxified_graph(
        inputs=list(symbolic.values()), outputs=clone_replace(stats, replace=symbolic)
    )
    logp_fn = get_jaxified_graph(inputs=[*value_vars, *symbolic.values(), *placeholders], outputs=[logp])
    return stats_fn, logp_fn


def ravel_point(cm: CompiledModel, point: dict) -> np.ndarray:
    """Flatten a point into the compiled flat layout.  Each value variable is taken from ``point`` by
    its own name, or else by its random variable's name in the constrained space (a posterior's
    variable, e.g. ``gauge_rho`` for ``gauge_rho_log__``: log-transformed back)."""
    parts = []
    for name, rv in zip(cm.param_names, cm.rv_names):
        if name in point:
            value = np.asarray(point[name], dtype=float)
        elif rv in point and name == f"{rv}_log__":
            value = np.log(np.asarray(point[rv], dtype=float))
        elif rv in point and name == rv:
            value = np.asarray(point[rv], dtype=float)
        else:
            raise ValueError(f"the point has no value for {name!r} (nor for its variable {rv!r})")
        parts.append(np.ravel(value))
    return np.concatenate(parts)


def as_jax(data: dict) -> dict:
    return {k: jnp.asarray(v) for k, v in data.items()}
