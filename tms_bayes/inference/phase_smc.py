"""A free energy per phase, measured: SMC restricted to a phase's region (issue 13, SPEC 2).

    F_n(W_α) = −log ∫_{W_α} φ(w) e^{−n_eff L(w)} dw

is the log evidence of the posterior restricted to the region W_α of phase α
(:mod:`tms_bayes.theory.regions`, the classifier's functional rule).  It is estimated by SMC over n
whose every target is restricted to W_α:

1. start: the prior restricted to W_α, by rejection from M prior draws; log Z₀ = log P̂(W_α) with
   standard error √((1 − p̂)/(M p̂)) (the binomial error of the acceptance fraction);
2. then the usual adaptive SMC of :func:`tms_bayes.inference.smc.run_smc` along n, with HMC moves whose
   proposals outside W_α are rejected, so that every particle stays in the region and log Z_n is the
   region's evidence at every grid point.

Phase shares cannot do this at large n: there F₅ − F₆ is hundreds of nats and no unrestricted particle
stays in the 5-gon.  On the population model (energy n L, the closed-form potential; no dataset noise)
the result is compared with the Laplace expansion of :mod:`tms_bayes.theory.laplace`, whose terms it
tests: the residual should shrink with n (the flat region's faces rise cubically, ≈ n^{−1/3}).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import xarray as xr

from .. import __version__, _validate
from .._jax import jax, jnp
from ..theory import regions
from ..theory.critical_points import parse_phase
from .compile import compile_model
from .smc import SMCSettings, number_path, run_smc

__all__ = [
    "RestrictedSettings",
    "restricted_prior",
    "restricted_free_energy",
    "population_phase_free_energies",
]


@dataclass(frozen=True)
class RestrictedSettings:
    """Settings of a restricted-phase SMC run: the SMC's own settings, the number of prior draws for
    the region's prior mass, the region's rule, and ``align``: map particles onto the copy of the
    critical set nearest the catalogue point between moves (exact: the target is symmetric), so that
    the mass matrix sees one copy.

    ``dead_tol`` defaults to 0: the phase's region is then the neighbourhood on which its critical set
    is the minimum of L (a dead column exactly off, its flat region).  The classifier's default 0.4
    also admits the dead column's shell, which contains points of *lower* L on the way out of the
    5-gon (its own output switching on, the exit towards 5+ and 6): at n = 10⁴ one run in three found
    that channel and came out 7 nats below the 5-gon's Laplace free energy (issue 13's note)."""

    smc: SMCSettings = SMCSettings(particles=1024, mcmc_steps=5, leapfrog_steps=10)
    prior_draws: int = 2_000_000
    dead_tol: float = 0.0
    vertex_norm: float = regions.DEFAULT_VERTEX_NORM
    align: bool = True

    def __post_init__(self):
        _validate.integer("prior_draws", self.prior_draws, minimum=1000)
        _validate.positive("dead_tol", self.dead_tol, strict=False)
        _validate.positive("vertex_norm", self.vertex_norm)


def _region(cm, c: int, phase: str, st: RestrictedSettings):
    """The region's indicator as a JAX function of flat parameters (W, b in the compiled layout)."""
    k, sigma, phi = parse_phase(phase)

    def inside(w):
        p = cm.unravel(w)
        return regions.in_phase_xp(
            jnp, p["W"], p["b"], k, sigma, phi, tol=st.dead_tol, vertex_norm=st.vertex_norm
        )

    return inside


def _aligner(cm, c: int, phase: str, st: "RestrictedSettings"):
    """Particles → their symmetry copy nearest the catalogue point (theory.regions.align_to_reference)."""
    from ..theory import critical_points

    k, _, _ = parse_phase(phase)
    W_ref = critical_points(c).W.sel(phase=phase).values

    def align(x):
        p = cm.unravel(x)
        W, b = regions.align_to_reference(
            p["W"], p["b"], W_ref, k, tol=st.dead_tol, vertex_norm=st.vertex_norm
        )
        return np.concatenate([W.reshape(len(x), -1) if n == "W" else b for n in cm.param_names], axis=1)

    return align


def restricted_prior(cm, inside, size: int, prior_std: float, draws: int, seed: int, batch: int = 200_000):
    """``size`` prior draws inside the region, and (log P̂(region), its standard error) from ``draws``
    prior draws (module docstring, step 1)."""
    rng = np.random.default_rng(seed)
    test = jax.jit(jax.vmap(inside))
    kept, n_kept, hits, done = [], 0, 0, 0
    while done < draws or n_kept < size:
        x = rng.normal(0.0, prior_std, size=(batch, cm.dim))
        ok = np.asarray(test(jnp.asarray(x)))
        if done < draws:
            take = min(batch, draws - done)
            hits, done = hits + int(ok[:take].sum()), done + take
            if done >= draws and hits == 0:
                raise ValueError(f"no prior draw of {draws} fell in the region; raise prior_draws")
        if n_kept < size:
            kept.append(x[ok])
            n_kept += int(ok.sum())
    p = hits / draws
    x0 = np.concatenate(kept)[:size]
    return x0, math.log(p), math.sqrt((1.0 - p) / hits)


def restricted_free_energy(
    c: int,
    phase: str,
    grid,
    *,
    prior_std: float = 1.0,
    settings: RestrictedSettings | None = None,
    seed: int = 0,
    progress: bool = True,
) -> xr.Dataset:
    """F_n(W_α) of the population TMS model (energy n L) at every n of ``grid`` by restricted SMC
    (module docstring).  Returns a Dataset (n): free_energy, log_prior_mass, its SE, stages, the
    share of particles still inside the region at the end (1 by construction), with settings in attrs."""
    from ..models.tms import tms_population_model

    st = settings or RestrictedSettings()
    c = _validate.integer("c", c, minimum=4)
    parse_phase(phase)
    grid = _validate.sample_sizes("grid", grid)
    prior_std = _validate.positive("prior_std", prior_std)
    t0 = time.perf_counter()
    cm = compile_model(tms_population_model(c, n=2, prior_std=prior_std))
    inside = _region(cm, c, phase, st)
    x0, log_p0, se0 = restricted_prior(cm, inside, st.smc.particles, prior_std, st.prior_draws, seed)
    path = number_path(cm.with_data(), "n")
    res = run_smc(
        cm,
        path,
        grid,
        x0,
        settings=st.smc,
        seed=seed,
        progress=progress,
        desc=f"restricted SMC {phase}",
        constraint=inside,
        log_z0=log_p0,
        canonicalise=_aligner(cm, c, phase, st) if st.align else None,
    )
    still = np.asarray(jax.vmap(inside)(jnp.asarray(res.particles[-1])))
    stages = np.searchsorted(res.stages["s"], grid.astype(float), side="right")
    return xr.Dataset(
        {"free_energy": ("n", -res.log_evidence), "stages": ("n", stages)},
        coords={"n": grid},
        attrs={
            "phase": phase,
            "c": c,
            "prior_std": prior_std,
            "seed": seed,
            "log_prior_mass": log_p0,
            "log_prior_mass_se": se0,
            "inside_share_final": float(still.mean()),
            "mean_acceptance": float(np.nanmean(res.stages["acceptance"])),
            "particles": st.smc.particles,
            "prior_draws": st.prior_draws,
            "dead_tol": st.dead_tol,
            "vertex_norm": st.vertex_norm,
            "wall_time_s": time.perf_counter() - t0,
            "tms_bayes_version": __version__,
            "estimator": "SMC over n restricted to the phase region (population model, energy n L)",
        },
    )


def population_phase_free_energies(
    c: int,
    phases,
    grid,
    *,
    repeats: int = 4,
    prior_std: float = 1.0,
    settings: RestrictedSettings | None = None,
    seed: int = 0,
    progress: bool = True,
) -> xr.Dataset:
    """F_n(W_α) for each phase by ``repeats`` independent restricted SMC runs, beside the Laplace
    expansion: Dataset (phase, repeat, n) with ``free_energy`` and (phase, n) ``mean``, ``se`` (SD over
    repeats / √repeats, which includes the prior-mass error) and ``laplace``."""
    from ..theory import critical_points, phase_free_energies

    if isinstance(phases, str):
        phases = [p.strip() for p in phases.split(",") if p.strip()]
    repeats = _validate.integer("repeats", repeats, minimum=2)
    runs = [
        [
            restricted_free_energy(
                c,
                p,
                grid,
                prior_std=prior_std,
                settings=settings,
                seed=seed + 1000 * i + j,
                progress=progress,
            )
            for i in range(repeats)
        ]
        for j, p in enumerate(phases)
    ]
    F = np.array([[r.free_energy.values for r in row] for row in runs])
    lap = phase_free_energies(
        critical_points(c), phases, grid, convention="laplace", prior_std=prior_std
    ).values.T
    wall = np.array([[r.attrs["wall_time_s"] for r in row] for row in runs])
    return xr.Dataset(
        {
            "free_energy": (("phase", "repeat", "n"), F),
            "mean": (("phase", "n"), F.mean(1)),
            "se": (("phase", "n"), F.std(1, ddof=1) / math.sqrt(repeats)),
            "laplace": (("phase", "n"), lap),
            "wall_time_s": (("phase", "repeat"), wall),
            "log_prior_mass": (
                ("phase", "repeat"),
                np.array([[r.attrs["log_prior_mass"] for r in row] for row in runs]),
            ),
        },
        coords={"phase": list(phases), "repeat": np.arange(repeats), "n": np.asarray(grid)},
        attrs={
            k: v
            for k, v in runs[0][0].attrs.items()
            if k
            not in (
                "phase",
                "seed",
                "wall_time_s",
                "log_prior_mass",
                "log_prior_mass_se",
                "inside_share_final",
                "mean_acceptance",
            )
        },
    )
