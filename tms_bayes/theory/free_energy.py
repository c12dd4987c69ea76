"""Local free energies, theoretical occupancy and crossovers between phases (SPEC 2).

For a phase α (a neighbourhood W_α of a critical point w*_α), Watanabe's asymptotic expansion gives

    F_n(W_α) = −log ∫_{W_α} φ(w) e^{−n L_n(w)} dw  ≈  n L_α + λ_α log n + c_α,

with lower-order terms (−(m_α − 1) log log n, O_p(√n) fluctuations) dropped.  The theoretical
occupancy is P(W_α | D_n) = exp(−F_α) / Σ_β exp(−F_β) over the chosen set of phases, and a
crossover between α and β is an n ≥ 1 solving F_α(n) = F_β(n).

Two conventions (``convention=``), both in the energy n_eff L with n_eff = nβ/(2σ²) (SPEC 2):

- ``"paper"``: F = n_eff L_α + λ_α log n_eff + c_α with the paper's c_α = ½‖w*‖² — the TMS
  paper's formula (5 → 6 at n ≈ 601 at the defaults);
- ``"laplace"``: the Laplace / Morse–Bott expansion with every O(1) term
  (:mod:`tms_bayes.theory.laplace`): orbit lengths, labelled copies, Hessian determinants, the prior's
  normaliser and the prior mass of the dead columns' flat region.

In both, F_α − F_β = a·n_eff + b·log n_eff + c', so F_α − F_β has at most two roots in log n: every
root ≥ 1 is returned by :func:`crossovers`, each marked ``trusted`` when n_eff ≥ ``trusted_from``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr
from scipy import optimize, special

from .. import _validate
from .critical_points import parse_phase
from .laplace import CONVENTIONS, constant_steps, laplace_terms, n_effective

__all__ = [
    "free_energy",
    "phase_free_energies",
    "theoretical_occupancy",
    "crossover",
    "crossovers",
    "crossover_steps",
    "winner_changes",
    "TRUSTED_FROM",
]

#: Smallest n_eff = nβ/(2σ²) at which a crossover of the expansions is marked trusted.  Measured on the
#: population model by restricted-phase SMC (benchmarks/phase_free_energy.py, regions with dead_tol = 0):
#: the Laplace F₅ − F₆ is off by −0.40 ± 0.08 nats at n = 300, −0.37 at 10³, −0.10 at 3·10³
#: and −0.03 at 3·10⁴ (F₅₊ − F₆ by < 0.4 everywhere), while each phase's own residual grows
#: quickly below a few hundred (5-gon −1.97 at n = 300); a root moves by ≈ residual / (n ΔL + Δλ),
#: which near n ≈ 100 is more than the root itself.  The paper also warns that classification fails below
#: n ≈ 400.
TRUSTED_FROM = 300.0


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
            raise ValueError(
                f"unknown phase {name!r} at c={catalogue.attrs.get('c')}; allowed: {', '.join(known)}"
            )
    if len(set(phases)) != len(phases):
        raise ValueError(f"phases must not repeat a name, got {phases}")
    sub = catalogue.sel(phase=phases)
    lam = sub["lambda_"].values.astype(float).copy()
    for i, name in enumerate(phases):
        if name in lambdas:
            lam[i] = float(lambdas[name])
        if not math.isfinite(lam[i]):
            raise ValueError(
                f"λ of phase {name!r} is unknown in theory (SPEC 1.2); "
                f"pass an estimate, e.g. lambdas={{'{name}': 7.3}}, "
                "or choose phases whose λ is known: "
                f"{', '.join(p for p, l in zip(known, catalogue['lambda_'].values) if math.isfinite(l))}"
            )
    return phases, sub["loss"].values.astype(float), lam, sub["c_alpha"].values.astype(float)


def _scale(sigma, beta, prior_std, convention):
    sigma = _validate.positive("sigma", sigma)
    beta = _validate.positive("beta", beta)
    prior_std = _validate.positive("prior_std", prior_std)
    convention = _validate.choice("convention", convention, CONVENTIONS)
    if convention == "paper" and prior_std != 1.0:
        raise ValueError(
            f"the paper's c_alpha = 0.5*|w*|^2 assumes prior_std = 1, got {prior_std}; "
            "use convention='laplace'"
        )
    return sigma, beta, prior_std, convention


def _coefficients(catalogue, phases, lambdas, convention, prior_std):
    """(names, L, complexity coefficient, O(1) constant): F = n_eff L + coef log n_eff + const."""
    names, L, lam, c = _phase_table(catalogue, phases, lambdas)
    if convention == "paper":
        return names, L, lam, c
    terms = laplace_terms(catalogue, names, prior_std=prior_std)
    return names, L, terms["hessian_rank"].values / 2.0, terms["constant"].values


def phase_free_energies(
    catalogue: xr.Dataset,
    phases,
    n,
    *,
    lambdas: Mapping[str, float] | None = None,
    convention: str = "paper",
    sigma: float = math.sqrt(0.5),
    beta: float = 1.0,
    prior_std: float = 1.0,
) -> xr.DataArray:
    """F_n(W_α) for each phase and n, as a DataArray (n, phase), in ``convention`` (module docstring):
    ``"paper"``: n_eff L_α + λ_α log n_eff + c_α;  ``"laplace"``: n_eff L_α + (r_α/2) log n_eff + C_α.
    The coordinates ``lambda_`` and ``c_alpha`` hold the coefficient of log n_eff and the O(1) term of
    the chosen convention (r_α/2 and the Laplace constant C_α for ``"laplace"``)."""
    sigma, beta, prior_std, convention = _scale(sigma, beta, prior_std, convention)
    names, L, coef, const = _coefficients(catalogue, phases, lambdas, convention, prior_std)
    n = _validate.sample_sizes("n", n)
    ne = n_effective(n, beta=beta, sigma=sigma)
    F = ne[:, None] * L[None, :] + np.log(ne)[:, None] * coef[None, :] + const[None, :]
    formula = (
        "F_n = n_eff*L + lambda*log(n_eff) + c_alpha"
        if convention == "paper"
        else "F_n = n_eff*L + (r/2)*log(n_eff) + C_laplace"
    )
    return xr.DataArray(
        F,
        dims=("n", "phase"),
        coords={
            "n": n,
            "phase": names,
            "loss": ("phase", L),
            "lambda_": ("phase", coef),
            "c_alpha": ("phase", const),
        },
        name="free_energy",
        attrs={
            "formula": formula,
            "convention": convention,
            "n_eff": "n*beta/(2*sigma^2)",
            "sigma": sigma,
            "beta": beta,
            "prior_std": prior_std,
            "c": catalogue.attrs.get("c"),
            "r": catalogue.attrs.get("r"),
        },
    )


def theoretical_occupancy(
    catalogue: xr.Dataset, phases, n, *, lambdas: Mapping[str, float] | None = None, **scale
) -> xr.DataArray:
    """P(W_α | D_n) = softmax(−F_n) over the chosen phases, as a DataArray (n, phase) (SPEC 2);
    ``scale``: convention, sigma, beta, prior_std as in :func:`phase_free_energies`."""
    F = phase_free_energies(catalogue, phases, n, lambdas=lambdas, **scale)
    occ = F.copy(data=special.softmax(-F.values, axis=1))
    occ.name = "occupancy"
    occ.attrs = dict(F.attrs, formula="exp(-F_a) / sum_b exp(-F_b)", free_energy=F.attrs["formula"])
    return occ


def crossovers(
    catalogue: xr.Dataset,
    phase_a: str,
    phase_b: str,
    *,
    lambdas: Mapping[str, float] | None = None,
    convention: str = "paper",
    sigma: float = math.sqrt(0.5),
    beta: float = 1.0,
    prior_std: float = 1.0,
    trusted_from: float = TRUSTED_FROM,
) -> list[dict]:
    """Every n ≥ 1 (up to 10¹²) where F_α(n) = F_β(n), increasing, as dicts
    {"n", "trusted", "winner_after"}.

    With t = log n_eff the difference g(t) = ΔL e^t + Δcoef t + Δconst is convex or concave in t, so it
    has at most two roots; each is bracketed on a fine grid and refined by Brent's method.  A root is
    ``trusted`` when n_eff = nβ/(2σ²) ≥ ``trusted_from`` (the expansions are asymptotic; module
    constant TRUSTED_FROM)."""
    sigma, tb, prior_std, convention = _scale(sigma, beta, prior_std, convention)
    names, L, coef, const = _coefficients(catalogue, [phase_a, phase_b], lambdas, convention, prior_std)
    return _roots(names, L, coef, const, float(n_effective(1.0, beta=tb, sigma=sigma)), trusted_from)


def _roots(names, L, coef, const, n_eff_per_n: float, trusted_from: float) -> list[dict]:
    """Roots n ≥ 1 of (L₀ − L₁) n_eff + (coef₀ − coef₁) log n_eff + (const₀ − const₁)
    (see crossovers)."""
    dL, dcoef, dc = L[0] - L[1], coef[0] - coef[1], const[0] - const[1]
    t0 = math.log(n_eff_per_n)

    def g(t):
        return dL * math.exp(t) + dcoef * t + dc

    ts = np.linspace(t0, t0 + math.log(1e12), 4001)
    gs = np.array([g(t) for t in ts])
    out = []
    for i in np.nonzero(np.sign(gs[:-1]) * np.sign(gs[1:]) < 0)[0]:
        t = optimize.brentq(g, ts[i], ts[i + 1], xtol=1e-14, rtol=1e-14)
        n = math.exp(t - t0)
        winner = names[0] if g(ts[i + 1]) < 0 else names[1]
        out.append(
            {"n": n, "trusted": bool(n * n_eff_per_n >= trusted_from), "winner_after": winner}
        )  # trust is in n_eff
    return out


def crossover_steps(
    catalogue: xr.Dataset, phase_a: str, phase_b: str, *, sigma: float = math.sqrt(0.5), beta: float = 1.0
) -> pd.DataFrame:
    """How each O(1) term of the Laplace expansion moves the α → β crossover: starting from the paper's
    convention and adding the terms of :data:`tms_bayes.theory.laplace.CONSTANT_STEPS` one by one
    (λ = r/2 throughout, prior std 1).  Rows: step, constant of each phase, their difference, every
    root n and the largest one."""
    steps = constant_steps(catalogue, [phase_a, phase_b])
    names, L, lam, _ = _phase_table(catalogue, [phase_a, phase_b], None)
    rows = []
    for step in steps.step.values:
        c = steps.sel(step=step).values
        roots = _roots(names, L, lam, c, float(n_effective(1.0, beta=beta, sigma=sigma)), TRUSTED_FROM)
        rows.append(
            {
                "step": str(step),
                f"C_{phase_a}": c[0],
                f"C_{phase_b}": c[1],
                "delta_C": c[0] - c[1],
                "roots": ", ".join(f"{r['n']:.1f}" for r in roots) or "none",
                "n_crit": roots[-1]["n"] if roots else math.nan,
            }
        )
    return pd.DataFrame(rows)


def crossover(
    catalogue: xr.Dataset, phase_a: str, phase_b: str, *, lambdas: Mapping[str, float] | None = None, **scale
) -> float:
    """The largest n ≥ 1 with F_α(n) = F_β(n) (after it the phase of lower loss wins for every larger n),
    or ``nan`` when the curves never cross; every root: :func:`crossovers` (same keywords)."""
    roots = crossovers(catalogue, phase_a, phase_b, lambdas=lambdas, **scale)
    return roots[-1]["n"] if roots else math.nan


def winner_changes(
    occupancy: xr.DataArray, catalogue: xr.Dataset, *, lambdas: Mapping[str, float] | None = None
) -> list[dict]:
    """Where the most probable phase changes along an occupancy curve: a list of
    ``{"from", "to", "n_crit"}`` with n_crit solved exactly by :func:`crossover` in the curve's convention."""
    a = occupancy.attrs
    scale = {
        "convention": a.get("convention", "paper"),
        "sigma": a.get("sigma", math.sqrt(0.5)),
        "beta": a.get("beta", 1.0),
        "prior_std": a.get("prior_std", 1.0),
    }
    winners = occupancy.phase.values[occupancy.argmax("phase").values]
    out = []
    for i in range(1, len(winners)):
        if winners[i] != winners[i - 1]:
            a, b = str(winners[i - 1]), str(winners[i])
            out.append({"from": a, "to": b, "n_crit": crossover(catalogue, a, b, lambdas=lambdas, **scale)})
    return out
