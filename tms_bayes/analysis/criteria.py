"""Watanabe's information criteria from a run's pointwise log-likelihood: WAIC, LOO, WBIC and the
two-temperature λ estimate.

Every function takes an ArviZ ``InferenceData`` with a ``log_likelihood`` group — a sweep's saved run
(``runs/n…_seed….nc``: one value per row of D_n) or ``pm.sample(..., idata_kwargs={"log_likelihood":
True})`` on one of our models (PyMC stores one value per element: the other axes are summed per row,
and rows outside the model's ``mask`` are dropped).  With ℓ_k(w) = log p(x_k | w), k = 1..n:

- WAIC (Watanabe 2010): W_n = −Σ_k log E_w[p(x_k|w)] + Σ_k Var_w[ℓ_k(w)], in nats on the same scale
  as the free energy (= −2·… of some texts, here −elpd_waic);  ArviZ's ``az.waic`` computes it.
- LOO: PSIS leave-one-out (``az.loo``), with its Pareto k̂ diagnostic.
- WBIC (Watanabe 2013, eq. 8): WBIC = E_β[n L_n(w)] at β = 1/log n, n L_n(w) = −Σ_k ℓ_k(w): an
  estimate of the free energy F_n = −log Z_n, asymptotically n L_n(w₀) + λ log n (Thm 4).
- Two temperatures (Watanabe 2013, Cor. 3): since ∂_β E_β[n L_n] ≈ −λ/β²,
  λ̂ = (E_{β₁}[n L_n] − E_{β₂}[n L_n]) / (1/β₁ − 1/β₂).

These criteria assume the posterior was sampled at β (WBIC) or β = 1 (WAIC, LOO: for a tempered
run they are computed all the same and flagged in ``attrs``).  Standard errors of expectations are
Monte Carlo errors sd/√ESS (ArviZ's bulk ESS of the per-draw n L_n).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import xarray as xr

from .._stats import mean_and_se

__all__ = [
    "pointwise_log_likelihood",
    "energy_draws",
    "tempered_energy",
    "wbic",
    "two_temperature_lambda",
    "waic_loo",
    "sweep_criteria",
]


def pointwise_log_likelihood(idata) -> xr.DataArray:
    """ℓ_k(w) of every draw: (chain, draw, obs), the rows of D_n only.  Raises a ValueError when the
    run has no ``log_likelihood`` group or several observed variables."""
    if "log_likelihood" not in idata.groups():
        raise ValueError(
            "this InferenceData has no log_likelihood group: use a saved tms-bayes run, or pm.sample(..., "
            "idata_kwargs={'log_likelihood': True}) on a model with an observed variable"
        )
    names = list(idata.log_likelihood.data_vars)
    if len(names) != 1:
        raise ValueError(f"expected one observed variable in log_likelihood, got {names}")
    ll = idata.log_likelihood[names[0]]
    obs = [d for d in ll.dims if d not in ("chain", "draw")]
    if not obs:
        raise ValueError(f"log_likelihood {names[0]!r} has no observation axis")
    ll = ll.astype(float).sum(obs[1:]) if len(obs) > 1 else ll.astype(float)
    ll = ll.rename({obs[0]: "obs"})
    if "constant_data" in idata.groups() and "mask" in idata.constant_data:
        keep = np.asarray(idata.constant_data["mask"].values) > 0.5
        if keep.shape == (ll.sizes["obs"],) and not keep.all():
            ll = ll.isel(obs=np.flatnonzero(keep))
    return ll


def _beta(idata) -> float:
    post = idata.posterior
    if "beta_used" in post.attrs:
        return float(post.attrs["beta_used"])
    if "constant_data" in idata.groups() and "beta" in idata.constant_data:
        return float(np.ravel(idata.constant_data["beta"].values)[0])  # 0-d, or (1,) from nutpie
    return 1.0


def energy_draws(idata) -> xr.DataArray:
    """n L_n(w) = −Σ_k ℓ_k(w) of every draw (chain, draw), in nats."""
    return -pointwise_log_likelihood(idata).sum("obs")


def _mean_and_mcse(x: xr.DataArray) -> tuple[float, float]:
    """Mean over (chain, draw) and its standard error (:func:`tms_bayes._stats.mean_and_se`)."""
    mean, se, _ = mean_and_se(x.transpose("chain", "draw").values)
    return mean, se


def tempered_energy(idata) -> dict:
    """E_β[n L_n] of the run, its Monte Carlo error, β and n."""
    ll = pointwise_log_likelihood(idata)
    mean, mcse = _mean_and_mcse(-ll.sum("obs"))
    return {"energy": mean, "mcse": mcse, "beta": _beta(idata), "n": int(ll.sizes["obs"])}


def wbic(idata, *, rtol: float = 1e-6) -> dict:
    """WBIC = E_β[n L_n] at β = 1/log n (module docstring), with its Monte Carlo error.  Refuses a run
    sampled at another β (the value would not be WBIC)."""
    out = tempered_energy(idata)
    n, beta = out["n"], out["beta"]
    if n < 2 or abs(beta * math.log(n) - 1.0) > rtol:
        raise ValueError(
            f"WBIC needs a run sampled at β = 1/log n = {1 / math.log(max(n, 2)):.6g} (n = {n}); "
            f"this one used β = {beta:.6g}. "
            "Sample at beta='1/log n' (tms-bayes sweep --beta 1/log-n, or tms_bayes.inference.wbic.wbic)"
        )
    return {"wbic": out["energy"], "mcse": out["mcse"], "beta": beta, "n": n}


def two_temperature_lambda(idata_1, idata_2) -> dict:
    """Watanabe's λ̂ = (E_{β₁}[n L_n] − E_{β₂}[n L_n]) / (1/β₁ − 1/β₂) from two runs on the
    same data at β₁ ≠ β₂; the standard error combines both runs' Monte Carlo errors (independent
    chains)."""
    a, b = tempered_energy(idata_1), tempered_energy(idata_2)
    if a["n"] != b["n"]:
        raise ValueError(f"the two runs must be on the same data; they have n = {a['n']} and {b['n']} rows")
    if math.isclose(a["beta"], b["beta"], rel_tol=1e-9):
        raise ValueError(f"the two runs must use different β, both used {a['beta']:.6g}")
    scale = 1.0 / a["beta"] - 1.0 / b["beta"]
    lam = (a["energy"] - b["energy"]) / scale
    return {
        "lambda": lam,
        "se": math.hypot(a["mcse"], b["mcse"]) / abs(scale),
        "beta_1": a["beta"],
        "beta_2": b["beta"],
        "n": a["n"],
        "energy_1": a["energy"],
        "energy_2": b["energy"],
    }


def waic_loo(idata) -> dict:
    """WAIC and PSIS-LOO of the run (ArviZ), as free-energy-scale numbers (nats, −elpd) with standard
    errors, the effective numbers of parameters, and LOO's count of Pareto k̂ > 0.7 (unreliable rows)."""
    import arviz as az

    ll = pointwise_log_likelihood(idata)
    single = az.InferenceData(
        posterior=idata.posterior[[next(iter(idata.posterior.data_vars))]],
        log_likelihood=xr.Dataset({"ll": ll}),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = az.waic(
            single, pointwise=True
        )  # (arviz 0.23 names the pointwise=False result "waic", not "elpd_waic")
        lo = az.loo(single, pointwise=True)
    k = np.asarray(lo.pareto_k)
    return {
        "waic": -float(w.elpd_waic),
        "waic_se": float(w.se),
        "p_waic": float(w.p_waic),
        "loo": -float(lo.elpd_loo),
        "loo_se": float(lo.se),
        "p_loo": float(lo.p_loo),
        "pareto_k_bad": int(np.sum(k > 0.7)),
        "n": int(ll.sizes["obs"]),
        "beta": _beta(idata),
    }


def sweep_criteria(sweep, *, progress: bool = False) -> xr.Dataset:
    """WAIC, LOO and E_β[n L_n] (WBIC where β = 1/log n) of every finished run of a sweep, over (n, seed).

    ``attrs['tempered']`` says whether any run used β ≠ 1 (then WAIC/LOO are those of the tempered
    posterior, not Watanabe's criteria)."""
    from tqdm.auto import tqdm

    st = sweep.settings
    fields = (
        "waic",
        "waic_se",
        "p_waic",
        "loo",
        "loo_se",
        "p_loo",
        "pareto_k_bad",
        "energy",
        "energy_mcse",
        "beta",
    )
    table = {f: np.full((len(st.n), st.seeds), np.nan) for f in fields}
    finished = set(sweep.finished())  # unfinished jobs stay NaN; a finished but corrupt file is an error
    jobs = [(i, n, s) for i, n in enumerate(st.n) for s in range(st.seeds) if (n, s) in finished]
    for i, n, s in tqdm(jobs, desc="criteria", unit="run", disable=not progress):
        idata = sweep.load(n, s)
        row = waic_loo(idata)
        e = tempered_energy(idata)
        row.update(energy=e["energy"], energy_mcse=e["mcse"])
        for f in fields:
            table[f][i, s] = row[f]
    ds = xr.Dataset(
        {f: (("n", "seed"), v) for f, v in table.items()},
        coords={"n": list(st.n), "seed": np.arange(st.seeds)},
    )
    betas = ds.beta.values[np.isfinite(ds.beta.values)]
    is_wbic = bool(betas.size) and bool(
        np.allclose(
            betas * np.log(np.broadcast_to(ds.n.values[:, None], ds.beta.shape)[np.isfinite(ds.beta.values)]),
            1.0,
        )
    )
    if is_wbic:
        ds["wbic"], ds["wbic_mcse"] = ds.energy, ds.energy_mcse
    ds.attrs.update(
        {
            "tempered": bool(betas.size) and not bool(np.allclose(betas, 1.0)),
            "wbic": is_wbic,
            "beta_setting": str(st.beta),
            "model": st.model,
            "formula": "waic = -elpd_waic = -sum_k log E[p(x_k|w)] + sum_k Var[log p(x_k|w)]; "
            "energy = E_beta[-sum_k log p(x_k|w)]",
        }
    )
    return ds
