"""WBIC and the two-temperature λ̂ (Watanabe 2013) — of one model, or of a TMS/ReLU sweep per n.

WBIC = E_β[n L_n(w)] at β₁ = 1/log n estimates the free energy F_n; a second temperature
β₂ = a/log n gives λ̂ = (E_{β₁}[n L_n] − E_{β₂}[n L_n]) / (1/β₁ − 1/β₂) (formulas in
:mod:`tms_bayes.analysis.criteria`).  WBIC needs its own sampling (the posterior at β = 1/log n is
much hotter than the Bayes posterior): it is an option, not part of ``tms-bayes run``.

- :func:`model_wbic` — any of our PyMC models (``models.known``, ``models.tms``, ``models.relu``).
- :class:`WbicSettings` · :func:`run` · :func:`analyse` · :func:`report` — a sweep over n: two sweeps
  (``out/beta_1``, ``out/beta_2``, the same datasets D_n) and per (n, seed) WBIC and λ̂.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import xarray as xr

from .. import _validate
from .._options import setting
from ..analysis.criteria import two_temperature_lambda, wbic
from ..inference.executor import ExecutorOptions
from ..inference.sweep import Sweep, SweepSettings, load_sweep
from ..inference.wbic import sample_tempered, selected_rows
from . import Command

__all__ = ["model_wbic", "WbicSettings", "run", "analyse", "report", "main", "COMMAND"]


def model_wbic(
    model,
    *,
    beta_ratio: float = 1.5,
    chains: int = 4,
    tune: int = 500,
    draws: int = 1000,
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """WBIC of ``model`` on its data (n = the rows its mask selects) and the two-temperature λ̂ from
    β₁ = 1/log n and β₂ = ``beta_ratio``/log n, with Monte Carlo errors.

    Returns {"wbic", "wbic_mcse", "lambda", "lambda_se", "n", "beta_1", "beta_2", "energy_2",
    "idata_1", "idata_2"} (the two runs as InferenceData with their log_likelihood groups)."""
    from ..inference.compile import compile_model

    beta_ratio = _validate.positive("beta_ratio", beta_ratio)
    if math.isclose(beta_ratio, 1.0):
        raise ValueError("beta_ratio must differ from 1 (the two temperatures must differ)")
    cm = compile_model(model)
    n, _ = selected_rows(cm)
    if n < 2:
        raise ValueError(f"WBIC needs n >= 2 rows (β = 1/log n), the model selects {n}")
    first = sample_tempered(
        model,
        1.0 / math.log(n),
        chains=chains,
        tune=tune,
        draws=draws,
        seed=seed,
        progress=progress,
        compiled=(cm, None),
    )
    second = sample_tempered(
        model,
        beta_ratio / math.log(n),
        chains=chains,
        tune=tune,
        draws=draws,
        seed=seed + 1,
        progress=progress,
        compiled=first.compiled,
    )
    w = wbic(first)
    lam = two_temperature_lambda(first, second)
    return {
        "wbic": w["wbic"],
        "wbic_mcse": w["mcse"],
        "lambda": lam["lambda"],
        "lambda_se": lam["se"],
        "n": n,
        "beta_1": lam["beta_1"],
        "beta_2": lam["beta_2"],
        "energy_2": lam["energy_2"],
        "idata_1": first,
        "idata_2": second,
    }


@dataclass(frozen=True)
class WbicSettings:
    """A WBIC sweep: the posterior sweep ``sweep`` (its β is replaced) at β₁ = 1/log n and
    β₂ = ``beta_ratio``/log n."""

    sweep: SweepSettings = setting(
        default_factory=lambda: SweepSettings(n=(100, 200, 400, 800, 1600), seeds=2)
    )
    beta_ratio: float = setting(1.5, "second temperature a/log n")
    run_on: ExecutorOptions = setting(default_factory=ExecutorOptions)

    def __post_init__(self):
        if self.sweep.beta is not None:
            raise ValueError("WBIC sets β itself (1/log n and beta_ratio/log n); drop beta (--beta)")
        _validate.positive("beta_ratio", self.beta_ratio)
        if math.isclose(self.beta_ratio, 1.0):
            raise ValueError("beta_ratio must differ from 1 (the two temperatures must differ)")
        if min(self.sweep.n) < 2:
            raise ValueError(f"WBIC needs n >= 2 (β = 1/log n), got n = {min(self.sweep.n)}")

    def sweeps(self) -> tuple[SweepSettings, SweepSettings]:
        return replace(self.sweep, beta="1/log n"), replace(self.sweep, beta=f"{self.beta_ratio:g}/log n")


def run(settings: WbicSettings, out, *, progress: bool = True, log=print, devices: int | None = None) -> Path:
    """Run (or resume) both temperatures' sweeps into ``out/beta_1`` and ``out/beta_2`` (where
    ``settings.run_on`` says: :func:`tms_bayes.experiments.posterior_sweep.run`); returns ``out``."""
    from .posterior_sweep import run as run_posterior_sweep

    out = Path(out)
    for name, st in zip(("beta_1", "beta_2"), settings.sweeps()):
        log(f"WBIC sweep at β = {st.beta} -> {out / name}")
        run_posterior_sweep(
            st, out / name, progress=progress, log=log, devices=devices, executor=settings.run_on
        )
    return out


def analyse(out) -> xr.Dataset:
    """Per (n, seed): WBIC ± MCSE, E_{β₂}[n L_n], the two-temperature λ̂ ± SE; and per n the seed mean
    of each (``*_mean``) with the spread over seeds (``*_sd``).  Unfinished jobs are NaN."""
    out = Path(out)
    one, two = load_sweep(out / "beta_1"), load_sweep(out / "beta_2")
    for sw in (one, two):
        if not isinstance(sw.settings.beta, str):
            raise ValueError(f"{sw.out} is not a WBIC sweep (its β is {sw.settings.beta!r}, not 'a/log n')")
    st = one.settings
    fields = ("wbic", "wbic_mcse", "energy_2", "lambda", "lambda_se")
    table = {f: np.full((len(st.n), st.seeds), np.nan) for f in fields}
    for i, n in enumerate(st.n):
        for s in range(st.seeds):
            runs = _pair(one, two, n, s)
            if runs is None:
                continue
            w, lam = wbic(runs[0]), two_temperature_lambda(*runs)
            for f, v in (
                ("wbic", w["wbic"]),
                ("wbic_mcse", w["mcse"]),
                ("energy_2", lam["energy_2"]),
                ("lambda", lam["lambda"]),
                ("lambda_se", lam["se"]),
            ):
                table[f][i, s] = v
    ds = xr.Dataset(
        {f: (("n", "seed"), v) for f, v in table.items()},
        coords={"n": list(st.n), "seed": np.arange(st.seeds)},
    )
    for f in ("wbic", "lambda"):
        ds[f"{f}_mean"] = ds[f].mean("seed")
        ds[f"{f}_sd"] = ds[f].std("seed", ddof=1) if st.seeds > 1 else xr.full_like(ds[f"{f}_mean"], np.nan)
    ds["log_n"] = ("n", np.log(np.asarray(st.n, dtype=float)))
    first = one.load(*one.finished()[0]).posterior if one.finished() else None
    dim = (
        sum(int(np.prod(first[v].shape[2:])) for v in first.data_vars if v != "L_n")
        if first is not None
        else 0
    )
    ds.attrs.update(
        {
            "model": st.model,
            "parameters": dim,
            "beta_1": "1/log n",
            "beta_2": str(two.settings.beta),
            "seeds": st.seeds,
            "chains": st.chains,
            "draws": st.draws,
            "formula": (
                "wbic = E_{1/log n}[n L_n]; "
                "lambda = (E_b1[n L_n] - E_b2[n L_n]) / (1/b1 - 1/b2) (Watanabe 2013)"
            ),
            "n_L_n": "-sum_k log p(x_k | w) over the n rows of D_n (nats)",
        }
    )
    return ds


def _pair(one: Sweep, two: Sweep, n: int, s: int):
    """Both temperatures' runs (n, s), or None while either is unfinished (a corrupt file raises)."""
    if (n, s) not in one.finished() or (n, s) not in two.finished():
        return None
    return one.load(n, s), two.load(n, s)


def report(ds: xr.Dataset, out) -> dict[str, Path]:
    """``wbic.csv`` (one row per (n, seed)), ``wbic.nc`` and ``wbic.png`` (λ̂ against n with its error
    bars; WBIC − its n-linear part is not drawn: it needs L_n(w₀), unknown here)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ..store.atomic import write_figure, write_netcdf, write_text

    out = Path(out)
    frame = ds[["wbic", "wbic_mcse", "energy_2", "lambda", "lambda_se"]].to_dataframe().reset_index()
    files = {
        "csv": write_text(out / "wbic.csv", frame.to_csv(index=False, float_format="%.6g")),
        "nc": write_netcdf(out / "wbic.nc", ds),
    }
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for s in ds.seed.values:
        sub = ds.sel(seed=s)
        ax.errorbar(
            sub.n.values,
            sub["lambda"].values,
            yerr=2 * sub.lambda_se.values,
            marker="o",
            ms=3,
            lw=1,
            capsize=2,
            label=f"seed {s}",
        )
    if ds.attrs.get("parameters"):
        ax.axhline(
            ds.attrs["parameters"] / 2,
            color="0.4",
            ls="--",
            lw=1,
            label=f"d/2 = {ds.attrs['parameters'] / 2:g} (a regular model's λ)",
        )
    ax.set_xscale("log")
    ax.set_xlabel("n")
    ax.set_ylabel("two-temperature λ̂  (± 2 SE)")
    ax.set_title(f"{ds.attrs.get('model', '')}: λ̂ from WBIC at β = 1/log n and {ds.attrs.get('beta_2', '')}")
    ax.legend(fontsize=7)
    files["png"] = write_figure(out / "wbic.png", fig)
    plt.close(fig)
    return files


def main(settings: WbicSettings, out=None, *, progress: bool = True) -> int:
    """Run both sweeps, analyse and report into ``out`` (default ``runs/wbic-<model>``) and print the
    table (the CLI's ``wbic``)."""
    out = out or f"runs/wbic-{settings.sweep.model}"
    run(settings, out, progress=progress)
    ds = analyse(out)
    files = report(ds, out)
    print(ds[["wbic", "wbic_mcse", "lambda", "lambda_se"]].to_dataframe().round(3).to_string())
    for path in files.values():
        print(f"wrote {path}")
    return 0


COMMAND = Command(
    "wbic",
    "WBIC per n (two sweeps at beta = 1/log n and a/log n) and Watanabe's two-temperature lambda",
    WbicSettings,
    main,
    lambda s: f"runs/wbic-{s.sweep.model}",
)
