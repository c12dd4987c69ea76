"""Local free energies, theoretical occupancy and crossovers between phases (SPEC 2).

For a phase α (a neighbourhood W_α of a critical point w*_α), Watanabe's asymptotic expansion gives

    F_n(W_α) = −log ∫_{W_α} φ(w) e^{−n L_n(w)} dw  ≈  n L_α + λ_α log n + c_α,

with lower-order terms (−(m_α − 1) log log n, O_p(√n) fluctuations) dropped.  The theoretical
occupancy is P(W_α | D_n) = exp(−F_α) / Σ_β exp(−F_β) over the chosen set of phases, and the
crossover between α and β is the n > 0 solving n ΔL + Δλ log n + Δc = 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr
from scipy import optimize, special

from .. import _validate
from .critical_points import parse_phase

__all__ = ["free_energy", "phase_free_energies", "theoretical_occupancy", "crossover", "winner_changes"]


def free_energy(n, loss, lam, c_alpha):
    """F_n ≈ n L + λ log n + c (SPEC 2); ``n`` > 0 may be an array."""
    n = _validate.sample_sizes("n", n) if np.ndim(n) else _validate.positive("n", n)
    return n * loss + lam * np.log(n) + c_alpha


def _phase_table(catalogue: xr.Dataset, phases: Sequence[str], lambdas: Mapping[str, float] | None):
    """(names, L, λ, c) for the chosen phases; λ from ``lambdas`` where given, else from theory."""
    if isinstance(phases, str):
        phases = [p for p in phases.split(",") if p.strip()]
    phases = [p.strip().replace("−", "-") for p in phases]
    if len(phases) == 0:
        raise ValueError("phases must name at least one phase of the catalogue")
    known = list(catalogue.phase.values)
    lambdas = {k.replace("−", "-"): v for k, v in (lambdas or {}).items()}
    for name in list(phases) + list(lambdas):
        parse_phase(name)  # form check first: a clearer message for typos like '5x'
        if name not in known:
            raise ValueError(f"unknown phase {name!r} at c={catalogue.attrs.get('c')}; allowed: {', '.join(known)}")
    if len(set(phases)) != len(phases):
        raise ValueError(f"phases must not repeat a name, got {phases}")
    sub = catalogue.sel(phase=phases)
    lam = sub["lambda_"].values.astype(float).copy()
    for i, name in enumerate(phases):
        if name in lambdas:
            lam[i] = float(lambdas[name])
        if not math.isfinite(lam[i]):
            raise ValueError(
                f"λ of phase {name!r} is unknown in theory (SPEC 1.2); pass an estimate, e.g. lambdas={{'{name}': 7.3}}, "
                f"or choose phases whose λ is known: {', '.join(p for p, l in zip(known, catalogue['lambda_'].values) if math.isfinite(l))}"
            )
    return phases, sub["loss"].values.astype(float), lam, sub["c_alpha"].values.astype(float)


def phase_free_energies(catalogue: xr.Dataset, phases, n, *, lambdas: Mapping[str, float] | None = None) -> xr.DataArray:
    """F_n(W_α) = n L_α + λ_α log n + c_α for each phase and n, as a DataArray (n, phase)."""
    names, L, lam, c = _phase_table(catalogue, phases, lambdas)
    n = _validate.sample_sizes("n", n)
    F = n[:, None] * L[None, :] + np.log(n)[:, None] * lam[None, :] + c[None, :]
    return xr.DataArray(
        F,
        dims=("n", "phase"),
        coords={"n": n, "phase": names, "loss": ("phase", L), "lambda_": ("phase", lam), "c_alpha": ("phase", c)},
        name="free_energy",
        attrs={"formula": "F_n = n*L + lambda*log(n) + c_alpha", "c": catalogue.attrs.get("c"), "r": catalogue.attrs.get("r")},
    )


def theoretical_occupancy(catalogue: xr.Dataset, phases, n, *, lambdas: Mapping[str, float] | None = None) -> xr.DataArray:
    """P(W_α | D_n) = softmax(−F_n) over the chosen phases, as a DataArray (n, phase) (SPEC 2)."""
    F = phase_free_energies(catalogue, phases, n, lambdas=lambdas)
    occ = F.copy(data=special.softmax(-F.values, axis=1))
    occ.name = "occupancy"
    occ.attrs = dict(F.attrs, formula="exp(-F_a) / sum_b exp(-F_b)")
    return occ


def crossover(catalogue: xr.Dataset, alpha: str, beta: str, *, lambdas: Mapping[str, float] | None = None) -> float:
    """n_crit solving n ΔL + Δλ log n + Δc = 0 for phases α, β (SPEC 2).

    The difference g(t) = F_α − F_β at n = e^t is convex or concave in t, so it has at most two
    roots; the one returned is the largest, after which the phase of lower loss wins for every larger
    n.  Returns ``nan`` when the curves never cross for n ≥ 1.
    """
    names, L, lam, c = _phase_table(catalogue, [alpha, beta], lambdas)
    dL, dlam, dc = L[0] - L[1], lam[0] - lam[1], c[0] - c[1]

    def g(t):
        return dL * math.exp(t) + dlam * t + dc

    ts = np.linspace(0.0, math.log(1e12), 2001)
    gs = np.array([g(t) for t in ts])
    sign_changes = np.nonzero(np.sign(gs[:-1]) * np.sign(gs[1:]) < 0)[0]
    if sign_changes.size == 0:
        return math.nan
    i = sign_changes[-1]
    return math.exp(optimize.brentq(g, ts[i], ts[i + 1], xtol=1e-14, rtol=1e-14))


def winner_changes(occupancy: xr.DataArray, catalogue: xr.Dataset, *, lambdas: Mapping[str, float] | None = None) -> list[dict]:
    """Where the most probable phase changes along an occupancy curve: a list of
    ``{"from", "to", "n_crit"}`` with n_crit solved exactly by :func:`crossover`."""
    winners = occupancy.phase.values[occupancy.argmax("phase").values]
    out = []
    for i in range(1, len(winners)):
        if winners[i] != winners[i - 1]:
            a, b = str(winners[i - 1]), str(winners[i])
            out.append({"from": a, "to": b, "n_crit": crossover(catalogue, a, b, lambdas=lambdas)})
    return out
