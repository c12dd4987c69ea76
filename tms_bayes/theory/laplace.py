"""Finite-n free energy of a phase by the Laplace / Morse–Bott expansion, every O(1) term kept (SPEC 2).

Energy n_eff L with n_eff = nβ/(2σ²) (= n at the TMS defaults β = 1, σ² = 1/2), prior φ = N(0, s² I)
on the d = 3c parameters.  Around a minimally singular critical set M_α (a smooth manifold of
critical points on which the Hessian H of L has constant rank r_α in the normal directions),

    F_α(n) = −log ∫_{U_α} φ(w) e^{−n_eff L(w)} dw
           = n_eff L_α + (r_α/2) log n_eff − (r_α/2) log 2π + ½ log det′H_α
             − log ∫_{M_α} φ dvol + o(1),

because the normal integral is ∫_{R^r} e^{−n_eff xᵀHx/2} dx = (2π/n_eff)^{r/2} (det′H)^{−1/2},
det′ the product of the non-zero eigenvalues.  For a k^{σ+} point (k ≥ 5 at r = 2) the critical set is

    M_α = (labelled copies) × (SO(2) orbit of the live columns) × (flat region of the dead columns),

and φ factorises into the live part (constant on an orbit) and the dead part, so

    ∫_{M_α} φ dvol = copies · 2π‖W_live‖_F · φ_live(w*) · P_s(flat region),

- **copies** = C(c, k) · (k − 1)! · C(c − k, σ): the live columns, their cyclic order about the
  polygon up to a rotation of positions ((k − 1)! counts both orientations, so reflections, the
  other component of O(2), are among them), and which zero columns carry σ+;
- **orbit** — rotating W by θ moves it at speed ‖J W‖_F = ‖W‖_F, so an orbit is a circle of length
  2π‖W_live‖_F;
- **−log φ_live(w*)** = ‖w*_live‖²/(2s²) + (d_live/2) log(2π s²) over the d_live = 3(k + σ) live
  coordinates.  The paper's c_α = ½‖w*‖² is the first part at s = 1; its normaliser (d_live/2) log 2π
  differs between phases;
- **P_s(flat region)** — the prior mass of the dead columns' flat region (:mod:`.regions` with tol = 0:
  own output never on, input reaching no live output), integrated jointly over all dead columns by
  Monte Carlo under N(0, s²) with the live columns at w*; its standard error is reported.  The 5-gon's
  single dead column has P ≈ 0.014 at s = 1.

The expansion misses the cubic shell outside the flat region's faces, where L rises like the cube of
the distance: its mass relative to the flat region decays like n^{−1/3}, so the expansion is trusted
only from a few hundred on (measured against the restricted-phase estimator in
:mod:`tms_bayes.inference.phase_smc`).  The paper's convention, F = n_eff L + λ log n_eff + c_α, is
kept beside it (``convention="paper"``).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import xarray as xr

from .. import _validate
from .critical_points import RANK_ATOL, RANK_RTOL, kgon, parse_phase
from .regions import column_roles, in_phase_xp

__all__ = [
    "laplace_terms",
    "constant_steps",
    "CONSTANT_STEPS",
    "neighbourhood_draws",
    "label_variants",
    "dataset_free_energies",
    "dataset_crossovers",
    "sign_changes",
    "flat_region_mass",
    "label_copies",
    "n_effective",
    "region_log_ratio",
    "CONVENTIONS",
]

CONVENTIONS = ("paper", "laplace")


def n_effective(n, *, beta: float = 1.0, sigma: float = math.sqrt(0.5)):
    """n_eff = nβ/(2σ²): the energy is n_eff L for a Gaussian likelihood of variance σ² tempered by
    β."""
    return np.asarray(n, dtype=float) * beta / (2.0 * sigma**2)


def label_copies(c: int, k: int, sigma: int) -> int:
    """C(c, k)·(k − 1)!·C(c − k, σ): labelled copies of a k^{σ+} critical set modulo SO(2)."""
    return math.comb(c, k) * math.factorial(k - 1) * math.comb(c - k, sigma)


def flat_region_mass(
    c: int,
    k: int,
    sigma: int,
    *,
    prior_std: float = 1.0,
    samples: int = 1_000_000,
    seed: int = 0,
    batch: int = 250_000,
) -> tuple[float, float]:
    """(P, standard error of log P): prior mass of the dead columns' flat region at the standard
    k^{σ+} point, by Monte Carlo over the c − k − σ dead columns drawn jointly from N(0, s²)."""
    return _flat_region_mass(c, k, sigma, float(prior_std), int(samples), int(seed), int(batch))


@functools.lru_cache(maxsize=64)
def _flat_region_mass(c, k, sigma, prior_std, samples, seed, batch):
    pt = kgon(k, c, sigma=sigma)
    dead = np.arange(k + sigma, c)
    if dead.size == 0:
        return 1.0, 0.0
    rng = np.random.default_rng(seed)
    hits, done = 0, 0
    while done < samples:
        m = min(batch, samples - done)
        W = np.broadcast_to(pt.W, (m, *pt.W.shape)).copy()
        b = np.broadcast_to(pt.b, (m, c)).copy()
        W[:, :, dead] = rng.normal(0.0, prior_std, size=(m, pt.W.shape[0], dead.size))
        b[:, dead] = rng.normal(0.0, prior_std, size=(m, dead.size))
        hits += int(np.sum(in_phase_xp(np, W, b, k, sigma, 0, tol=0.0)))
        done += m
    if hits == 0:
        raise ValueError(
            f"no prior draw of {samples} fell in the flat region of {k}{'+' * sigma} at c = {c}; "
            "raise samples"
        )
    p = hits / samples
    return p, math.sqrt((1.0 - p) / hits)


def region_log_ratio(
    catalogue: xr.Dataset,
    phase: str,
    n_eff,
    *,
    tol: float,
    prior_std: float = 1.0,
    samples: int = 200_000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(log R, SE of log R) per n_eff: how much more mass the phase's region at dead tolerance ``tol``
    holds than its flat region, with the live columns at w*:

        R(n) = ∫_{region τ} φ(w_d) e^{−n_eff ΔL(w_d)} dw_d  /  ∫_{flat} φ(w_d) dw_d,

    ΔL = L(w*, w_d) − L(w*, dead columns removed) (zero on the flat region, rising like the cube of the
    excess in its shell).  The Laplace expansion counts the flat region only (P_flat); the classifier's
    region (τ = 0.4) adds the shell, whose mass is o(1) as n → ∞ but not small at n in the hundreds:
    F_α(τ) = F_α(flat) − log R(n).  Monte Carlo over the dead columns drawn from the prior N(0, s²),
    the same draws for every n; SE by the delta method on the ratio of means.  A phase without dead
    columns has R = 1."""
    from .potential import potential
    from .regions import in_phase_xp

    k, sigma, phi = parse_phase(phase)
    n_eff = np.atleast_1d(np.asarray(n_eff, dtype=float))
    row = catalogue.sel(phase=phase)
    W0, b0 = np.asarray(row.W.values), np.asarray(row.b.values)
    r, c = W0.shape
    dead = np.arange(k + sigma, c)
    if dead.size == 0 or phi:
        return np.zeros_like(n_eff), np.zeros_like(n_eff)
    rng = np.random.default_rng(seed)
    W = np.broadcast_to(W0, (samples, r, c)).copy()
    b = np.broadcast_to(b0, (samples, c)).copy()
    W[:, :, dead] = rng.normal(0.0, prior_std, size=(samples, r, dead.size))
    b[:, dead] = rng.normal(0.0, prior_std, size=(samples, dead.size))
    Wk, bk = W.copy(), b.copy()
    Wk[:, :, dead], bk[:, dead] = 0.0, -1.0
    dL = np.maximum(potential(W, b) - potential(Wk, bk), 0.0)
    flat = in_phase_xp(np, W, b, k, sigma, 0, tol=0.0).astype(float)
    region = in_phase_xp(np, W, b, k, sigma, 0, tol=float(tol)).astype(float)
    if flat.sum() == 0:
        raise ValueError(f"no prior draw of {samples} fell in the flat region of {phase}; raise samples")
    out, se = [], []
    for ne in n_eff:
        w = region * np.exp(-ne * dL)
        ratio = w.mean() / flat.mean()
        # delta method for log(mean(w) / mean(f)) with paired draws
        cov = np.cov(np.stack([w, flat]))
        var = (
            cov[0, 0] / w.mean() ** 2
            + cov[1, 1] / flat.mean() ** 2
            - 2 * cov[0, 1] / (w.mean() * flat.mean())
        ) / samples
        out.append(math.log(ratio))
        se.append(math.sqrt(max(var, 0.0)))
    return np.array(out), np.array(se)


def laplace_terms(
    catalogue: xr.Dataset, phases, *, prior_std: float = 1.0, samples: int = 1_000_000, seed: int = 0
) -> xr.Dataset:
    """Every term of the Laplace free energy per phase (module docstring), as a Dataset (phase):
    hessian_rank, half_log_det (½ log det′H), log_orbit (log 2π‖W_live‖_F), copies, neg_log_prior
    (−log φ_live(w*)), flat_mass and its log-SE, and ``constant`` — the O(1) term
    −(r/2) log 2π + ½ log det′H − log ∫_M φ dvol.  Only minimally singular local minima qualify."""
    prior_std = _validate.positive("prior_std", prior_std)
    names = [p.strip() for p in (phases.split(",") if isinstance(phases, str) else phases)]
    c = int(catalogue.attrs["c"])
    rows = {
        key: []
        for key in (
            "hessian_rank",
            "half_log_det",
            "log_orbit",
            "copies",
            "neg_log_prior",
            "flat_mass",
            "flat_log_se",
            "constant",
            "loss",
        )
    }
    for name in names:
        if name not in catalogue.phase.values:
            raise ValueError(
                f"unknown phase {name!r} at c = {c}; allowed: {', '.join(map(str, catalogue.phase.values))}"
            )
        k, sigma, phi = parse_phase(name)
        row = catalogue.sel(phase=name)
        if str(row.lambda_source.values) != "theory" or phi:
            raise ValueError(
                "the Laplace free energy needs a minimally singular local minimum; "
                f"{name!r} is not one at c = {c} "
                "(the 4-gon family sits on kinks of L, and saddles have negative curvature); "
                "use convention='paper' with an estimated λ"
            )
        eig = np.asarray(row.hessian_eigenvalues.values, dtype=float)
        tol = max(RANK_RTOL * np.abs(eig).max(), RANK_ATOL)
        nz = eig[np.abs(eig) > tol]
        W, b = np.asarray(row.W.values), np.asarray(row.b.values)
        live = np.arange(k + sigma)
        w_live = np.concatenate([W[:, live].ravel(), b[live]])
        neg_log_prior = 0.5 * float(w_live @ w_live) / prior_std**2 + 0.5 * w_live.size * math.log(
            2 * math.pi * prior_std**2
        )
        log_orbit = math.log(2 * math.pi * float(np.linalg.norm(W[:, live])))
        copies = label_copies(c, k, sigma)
        mass, mass_se = flat_region_mass(c, k, sigma, prior_std=prior_std, samples=samples, seed=seed)
        half_log_det = 0.5 * float(np.sum(np.log(nz)))
        r = int(nz.size)
        const = (
            -0.5 * r * math.log(2 * math.pi)
            + half_log_det
            - (math.log(copies) + log_orbit - neg_log_prior + math.log(mass))
        )
        for key, v in (
            ("hessian_rank", r),
            ("half_log_det", half_log_det),
            ("log_orbit", log_orbit),
            ("copies", copies),
            ("neg_log_prior", neg_log_prior),
            ("flat_mass", mass),
            ("flat_log_se", mass_se),
            ("constant", const),
            ("loss", float(row.loss)),
        ):
            rows[key].append(v)
    attrs = {
        "prior_std": prior_std,
        "flat_samples": samples,
        "flat_seed": seed,
        "formula": "F = n_eff L + (r/2) log n_eff - (r/2) log 2pi + 0.5 log det'H "
        "- log(copies * orbit * phi_live(w*) * P_flat)",
    }
    return xr.Dataset(
        {k_: ("phase", np.asarray(v)) for k_, v in rows.items()}, coords={"phase": names}, attrs=attrs
    )


def neighbourhood_draws(
    catalogue: xr.Dataset,
    phase: str,
    n: float,
    size: int,
    *,
    seed: int = 0,
    prior_std: float = 1.0,
    dead_norm_max: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior-like draws (W (size, 2, c), b (size, c)) around the critical set of ``phase`` at energy n L.

    - live coordinates: the Laplace Gaussian N(w*, (n H)⁺) on the non-flat coordinates (H the Hessian of
      L at w*, ⁺ its pseudo-inverse, so the orbit direction gets no spread);
    - each dead column: drawn from the prior N(0, s²) restricted to the neighbourhood b_j ≤ 0,
      ‖W_j‖ ≤ ``dead_norm_max`` and kept with probability min(1, e^{−n ΔL}),
      ΔL = L − L(column removed): the whole flat region (ΔL = 0) and its cubic shell (ΔL > 0 rising
      like the cube of the excess);
    - then a uniformly random rotation, reflection and column permutation (the symmetries of L).
    Used to test the classifier on what a posterior at n looks like near each phase (issue 13)."""
    from .potential import pack, potential, potential_hessian

    k, sigma, _ = parse_phase(phase)
    row = catalogue.sel(phase=phase)
    W0, b0 = np.asarray(row.W.values), np.asarray(row.b.values)
    r, c = W0.shape
    rng = np.random.default_rng(seed)

    hess = potential_hessian(W0, b0)
    evals, evecs = np.linalg.eigh(hess)
    tol = max(RANK_RTOL * np.abs(evals).max(), RANK_ATOL)
    keep = evals > tol
    z = rng.normal(size=(size, int(keep.sum()))) / np.sqrt(n * evals[keep])
    w = pack(W0, b0)[None, :] + z @ evecs[:, keep].T
    W, b = w[:, : r * c].reshape(size, r, c), w[:, r * c :].copy()  # the pack layout, batched
    for j in range(k + sigma, c):  # dead columns, by rejection against the exact potential
        todo = np.arange(size)
        while todo.size:
            m = todo.size
            Wd = rng.normal(0.0, prior_std, size=(m, r))
            bd = -np.abs(rng.normal(0.0, prior_std, size=m))
            ok = np.linalg.norm(Wd, axis=1) <= dead_norm_max
            Wt, bt = W[todo].copy(), b[todo].copy()
            Wt[:, :, j], bt[:, j] = Wd, bd
            Wk, bk = Wt.copy(), bt.copy()
            Wk[:, :, j], bk[:, j] = 0.0, -1.0
            dL = potential(Wt, bt) - potential(Wk, bk)
            ok &= rng.random(m) < np.exp(-n * np.maximum(dL, 0.0))
            W[todo[ok]], b[todo[ok]] = Wt[ok], bt[ok]
            todo = todo[~ok]
    theta = rng.uniform(0, 2 * np.pi, size)
    R = np.stack(
        [np.stack([np.cos(theta), -np.sin(theta)], -1), np.stack([np.sin(theta), np.cos(theta)], -1)], -2
    )
    R[rng.random(size) < 0.5, 1] *= -1  # reflections
    W = np.einsum("sij,sjc->sic", R, W)
    perm = np.argsort(rng.random((size, c)), axis=1)
    return np.take_along_axis(W, perm[:, None, :], axis=2), np.take_along_axis(b, perm, axis=1)


def label_variants(catalogue: xr.Dataset, phase: str) -> tuple[np.ndarray, np.ndarray]:
    """Every labelled copy of ``phase``'s critical set modulo SO(2), as points (W (V, 2, c), b (V, c)):
    for each live set S, each cyclic order of S with its smallest label first ((k − 1)! orders, both
    orientations) and each choice of the σ+ columns, the catalogue point with its columns relabelled.
    On a dataset these copies are distinguishable (L_n is not permutation-symmetric), so each is a
    variant with its own minimiser ŵ_v; V = :func:`label_copies`."""
    import itertools

    k, sigma, _ = parse_phase(phase)
    row = catalogue.sel(phase=phase)
    W0, b0 = np.asarray(row.W.values), np.asarray(row.b.values)
    c = W0.shape[1]
    Ws, bs = [], []
    for S in itertools.combinations(range(c), k):
        rest = [j for j in range(c) if j not in S]
        for tail in itertools.permutations(S[1:]):
            order = (S[0], *tail)
            for T in itertools.combinations(rest, sigma):
                labels = list(order) + list(T) + [j for j in rest if j not in T]
                W, b = np.empty_like(W0), np.empty_like(b0)
                W[:, labels], b[labels] = W0, b0
                Ws.append(W)
                bs.append(b)
    return np.array(Ws), np.array(bs)


#: :func:`dataset_free_energies` stops its Newton steps once no variant moves by more than this (Newton
#: converges quadratically: the step after a 3e-5 move is ≲ 1e-9, the size of the round-off moves along
#: flat directions that continue forever), or after ``newton_steps`` / ``warm_steps``
NEWTON_TOL = 1e-8


def dataset_free_energies(
    catalogue: xr.Dataset,
    phases,
    X,
    n,
    *,
    sigma: float = math.sqrt(0.5),
    beta: float = 1.0,
    prior_std: float = 1.0,
    newton_steps: int = 30,
    warm_steps: int = 8,
) -> xr.Dataset:
    """Laplace free energies on one dataset: F_α(D_n) for each phase and each n (D_n = the first n rows
    of ``X``), summed over the data-distinguishable variants v (:func:`label_variants`):

        F_α(D_n) = −log Σ_v exp(−F_v),
        F_v = n_eff L_n(ŵ_v) + (r/2) log(n_eff/2π) + ½ log det′H_n(ŵ_v)
              − log(2π‖W_live‖_F · φ_live(ŵ_v) · P_flat),

    ŵ_v the minimiser of L_n near copy v *kept inside the phase* (damped Newton, vmapped over variants;
    a step is taken only if it lowers L_n and stays in the phase's region, so a minimiser that would
    leave — e.g. a 5-gon edge sliding into 5+ — stops at the last point inside and is counted in
    ``stuck``), H_n the Hessian of L_n there (its r largest eigenvalues), P_flat the population value
    of the dead columns' flat-region mass (the region is exactly flat on any dataset, and its mass
    depends on the live columns only through their small displacement).  Warm-started along n.
    Returns a Dataset (n, phase): free_energy, best_loss (min_v L_n(ŵ_v)), stuck (variants whose
    gradient did not vanish), with the convention in attrs.  At most ``newton_steps`` at the first n,
    ``warm_steps`` at each later one (started from the previous n's minimisers), fewer once every
    variant has converged (:data:`NEWTON_TOL`)."""
    from .._jax import jax, jnp

    if isinstance(phases, str):
        phases = [p.strip() for p in phases.split(",") if p.strip()]
    X = _validate.finite_array("X", X, ndim_min=2)
    n = _validate.sample_sizes("n", n)
    if n.max() > X.shape[0]:
        raise ValueError(f"n must be at most the dataset's {X.shape[0]} rows, got {n.max()}")
    ne = n_effective(n, beta=beta, sigma=sigma)
    terms = laplace_terms(catalogue, phases, prior_std=prior_std)
    Xj = jnp.asarray(X)
    rows = jnp.arange(X.shape[0])
    one_hot = None
    if np.all(np.count_nonzero(X, axis=1) <= 1):  # TMS inputs: at most one non-zero entry per row
        f = np.argmax(X != 0, axis=1)
        one_hot = (jnp.asarray(X[np.arange(len(X)), f]), jnp.asarray(f))
    F = np.zeros((len(n), len(phases)))
    best = np.zeros_like(F)
    stuck = np.zeros(F.shape, dtype=int)
    for a, phase in enumerate(phases):
        k, sg, ph = parse_phase(phase)
        r = int(terms.hessian_rank.sel(phase=phase))
        W0, b0 = label_variants(catalogue, phase)
        c = W0.shape[-1]
        d = 3 * c

        def loss(w, m):
            W, b = w[: 2 * c].reshape(2, c), w[2 * c :]
            G = W.T @ W
            if one_hot is None:
                out = jnp.maximum(Xj @ G + b, 0.0)
                return jnp.sum(m * jnp.sum((Xj - out) ** 2, axis=-1)) / jnp.sum(m)
            # x_k = μ_k e_{f_k}: x_k G = μ_k G[f_k], O(c) per row instead of O(c²)
            mu, f = one_hot
            out = jnp.maximum(mu[:, None] * G[f] + b, 0.0)
            return jnp.sum(m * jnp.sum((Xj - out) ** 2, axis=-1)) / jnp.sum(m)

        def inside(w):
            return in_phase_xp(jnp, w[: 2 * c].reshape(2, c), w[2 * c :], k, sg, ph)

        steps = 0.5 ** jnp.arange(10)

        def newton(w, m):
            g = jax.grad(loss)(w, m)
            H = jax.hessian(loss)(w, m)
            delta = -jnp.linalg.solve(H + 1e-9 * jnp.eye(d), g)
            cand = w[None, :] + steps[:, None] * delta[None, :]
            vals = jax.vmap(lambda x: loss(x, m))(cand)
            ok = (vals <= loss(w, m)) & jax.vmap(inside)(cand)
            i = jnp.argmax(ok)
            return jnp.where(ok[i], cand[i], w)

        @jax.jit
        def solve(w, m, iters):
            def more(state):  # until no variant moves by NEWTON_TOL (converged, or stopped at the edge)
                i, _, moved = state
                return (i < iters) & (moved > NEWTON_TOL)

            def step(state):
                i, x, _ = state
                y = jax.vmap(newton, in_axes=(0, None))(x, m)
                return i + 1, y, jnp.max(jnp.abs(y - x))

            _, w, _ = jax.lax.while_loop(more, step, (0, w, jnp.inf))
            g = jax.vmap(jax.grad(loss), in_axes=(0, None))(w, m)
            H = jax.vmap(jax.hessian(loss), in_axes=(0, None))(w, m)
            ev = jnp.sort(jnp.linalg.eigvalsh(H), axis=-1)[:, ::-1][:, :r]
            return (
                w,
                jax.vmap(loss, in_axes=(0, None))(w, m),
                jnp.linalg.norm(g, axis=-1),
                0.5 * jnp.sum(jnp.log(ev), axis=-1),
            )

        w = jnp.asarray(np.concatenate([W0.reshape(len(W0), -1), b0], axis=1))
        mass = float(terms.flat_mass.sel(phase=phase))
        for i, n_i in enumerate(n):
            m = (rows < n_i).astype(float)
            w, Ln, gnorm, hld = solve(w, m, newton_steps if i == 0 else warm_steps)
            wn = np.asarray(w)
            Wn, bn = wn[:, : 2 * c].reshape(-1, 2, c), wn[:, 2 * c :]
            _, dead, _, _ = column_roles(np, Wn, bn)
            live = ~dead
            w_live2 = (Wn**2 * live[:, None, :]).sum((1, 2)) + (bn**2 * live).sum(1)
            d_live = 3 * live.sum(1)
            neg_log_prior = 0.5 * w_live2 / prior_std**2 + 0.5 * d_live * math.log(2 * math.pi * prior_std**2)
            log_orbit = np.log(2 * math.pi * np.sqrt((Wn**2 * live[:, None, :]).sum((1, 2))))
            Fv = (
                ne[i] * np.asarray(Ln)
                + 0.5 * r * math.log(ne[i] / (2 * math.pi))
                + np.asarray(hld)
                - (log_orbit - neg_log_prior + math.log(mass))
            )
            F[i, a] = -float(_logsumexp(-Fv))
            best[i, a] = float(np.min(np.asarray(Ln)))
            stuck[i, a] = int(np.sum(np.asarray(gnorm) > 1e-6))
    return xr.Dataset(
        {
            "free_energy": (("n", "phase"), F),
            "best_loss": (("n", "phase"), best),
            "stuck": (("n", "phase"), stuck),
        },
        coords={"n": n, "phase": list(phases)},
        attrs={
            "convention": "laplace, per dataset",
            "sigma": sigma,
            "beta": beta,
            "prior_std": prior_std,
            "formula": "F = -logsumexp_v(-F_v), "
            "F_v = n_eff L_n(w_v) + (r/2) log(n_eff/2pi) + 0.5 log det'H_n - log(orbit phi_live P_flat)",
        },
    )


def _logsumexp(x):
    m = np.max(x)
    return m + np.log(np.sum(np.exp(x - m)))


#: The O(1) terms of the Laplace constant in the order :func:`constant_steps` adds them to the paper's c_α.
CONSTANT_STEPS = (
    ("paper c_alpha = |w*|^2/2", None),
    (
        "+ prior normaliser (d_live/2) log 2pi s^2",
        lambda t: 0.5 * 3 * t["live_columns"] * math.log(2 * math.pi * t["prior_std"] ** 2),
    ),
    (
        "+ Gaussian width -(r/2) log 2pi + 1/2 log det'H",
        lambda t: -0.5 * t["hessian_rank"] * math.log(2 * math.pi) + t["half_log_det"],
    ),
    ("- log orbit length", lambda t: -t["log_orbit"]),
    ("- log labelled copies", lambda t: -math.log(t["copies"])),
    ("- log flat-region prior mass", lambda t: -math.log(t["flat_mass"])),
)


def constant_steps(catalogue: xr.Dataset, phases, *, prior_std: float = 1.0) -> xr.DataArray:
    """The O(1) constant of each phase as the Laplace terms are added one by one to the paper's c_α
    (:data:`CONSTANT_STEPS`), DataArray (step, phase); the last step equals ``laplace_terms().constant``
    (with prior_std = 1, where the paper's c_α is the prior's exponent)."""
    terms = laplace_terms(catalogue, phases, prior_std=prior_std)
    out = np.zeros((len(CONSTANT_STEPS), terms.sizes["phase"]))
    for j, p in enumerate(terms.phase.values):
        t = {k: float(terms[k].sel(phase=p)) for k in terms.data_vars}
        t["prior_std"] = prior_std
        t["live_columns"] = sum(parse_phase(str(p))[:2])
        acc = t["neg_log_prior"] - 0.5 * 3 * t["live_columns"] * math.log(
            2 * math.pi * prior_std**2
        )  # ½‖w_live‖²/s²
        for i, (_, f) in enumerate(CONSTANT_STEPS):
            acc += 0.0 if f is None else f(t)
            out[i, j] = acc
    return xr.DataArray(
        out,
        dims=("step", "phase"),
        coords={"step": [s for s, _ in CONSTANT_STEPS], "phase": list(terms.phase.values)},
        name="constant",
        attrs={"prior_std": prior_std},
    )


def sign_changes(n, diff) -> list[float]:
    """Every n where ``diff`` (sampled on the increasing grid ``n``) changes sign, by linear
    interpolation between grid points (a zero on a grid point counts once)."""
    n, diff = np.asarray(n, dtype=float), np.asarray(diff, dtype=float)
    out = []
    for i in range(len(n) - 1):
        a, b = diff[i], diff[i + 1]
        if a == 0 and (i == 0 or diff[i - 1] != 0):
            out.append(float(n[i]))
        elif a * b < 0:
            out.append(float(n[i] + (n[i + 1] - n[i]) * a / (a - b)))
    if len(n) and diff[-1] == 0:
        out.append(float(n[-1]))
    return out


def dataset_crossovers(catalogue: xr.Dataset, phase_a: str, phase_b: str, X, n, **kw) -> list[float]:
    """Every n on the grid's span where F_a(D_n) = F_b(D_n) by :func:`dataset_free_energies` (keywords
    passed on), interpolated linearly between grid points."""
    ds = dataset_free_energies(catalogue, [phase_a, phase_b], X, n, **kw)
    return sign_changes(
        ds.n.values, (ds.free_energy.sel(phase=phase_a) - ds.free_energy.sel(phase=phase_b)).values
    )
