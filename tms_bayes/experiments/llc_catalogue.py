"""λ̂ at the catalogue's critical points (SPEC 3): the local learning coefficient of the TMS at each
named k-gon, beside theory's λ where theory gives one.

:class:`LlcSettings` · :func:`run` (→ an ``xarray.Dataset`` over ``phase`` plus each estimate's
InferenceData) · :func:`report` (``llc.csv``, ``llc.nc``, ``llc_<phase>.nc``) · :func:`table` (the
terminal table).  The estimator is :func:`tms_bayes.inference.llc.estimate_llc`:
λ̂ = nβ (E_w[L_n(w)] − L_n(w*)) under the localised tempered posterior
∝ exp(−nβ L_n(w) − γ/2 ‖w − w*‖²), nβ = n/log n by default.  At a saddle of L (negative Hessian
directions) λ̂ is not a learning coefficient, and where theory gives no λ the value is an estimate:
both are said in ``notes``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from .. import _validate
from .._options import setting
from .._parse import parse_names
from . import Command

__all__ = ["LlcSettings", "run", "report", "table", "main", "COMMAND"]


@dataclass(frozen=True)
class LlcSettings:
    """Every setting of a λ̂-at-the-catalogue run; validated on construction, before any work."""

    c: int = setting(6, "features c")
    phases: tuple[str, ...] = setting(
        ("5",),
        "phase name(s), comma-separated, or 'all' for the whole catalogue",
        flag="--phase",
        parse=parse_names,
    )
    data: str = setting(
        "population",
        "population: closed-form L at sample size n (no dataset noise); "
        "empirical: L_n on a dataset of n rows",
        choices=("population", "empirical"),
    )
    n: int = setting(100_000, "sample size n (nβ = n/log n)")
    refine: bool = setting(False, "empirical: first move w* to the nearest local minimum of L_n")
    sampler: str = setting("nuts", "λ̂ sampler", choices=("nuts", "sgld", "rmsprop_sgld"))
    chains: int = setting(4, "chains per estimate")
    draws: int = setting(500, "draws (NUTS) or steps (SGLD) per chain")
    tune: int = setting(300, "NUTS adaptation steps")
    gamma: float = setting(1.0, "localisation strength γ")
    nbeta: float | None = setting(None, "nβ", parse=float, show="n/log n")
    step_size: float = setting(1e-3, "SGLD step ε")
    confine: float = setting(
        100.0,
        "phase confinement κ: localisation strength on the dead columns, the coordinates through "
        "which a k-gon leaves its phase (0: none)",
    )
    batch_size: int | None = setting(None, "SGLD minibatch size", parse=int, show="full batch")
    seed: int = setting(0, "PRNG seed")

    def __post_init__(self):
        from ..theory import critical_points

        _validate.integer("c", self.c, minimum=2)
        _validate.choice("data", self.data, ("population", "empirical"))
        _validate.choice("sampler", self.sampler, ("nuts", "sgld", "rmsprop_sgld"))
        _validate.positive("confine", self.confine, strict=False)
        _validate.integer("n", self.n, minimum=2)
        _validate.ceiling("n", self.n, 10_000_000)
        _validate.integer("chains", self.chains, minimum=1)
        _validate.integer("draws", self.draws, minimum=1)
        _validate.ceiling(
            "chains × (tune + draws)", self.chains * (int(self.tune) + int(self.draws)), 10_000_000
        )
        _validate.integer("tune", self.tune, minimum=1)
        _validate.positive("gamma", self.gamma)
        _validate.positive("step_size", self.step_size)
        _validate.integer("seed", self.seed, minimum=0)
        if self.nbeta is not None:
            _validate.positive("nbeta", self.nbeta)
        if self.batch_size is not None:
            _validate.integer("batch_size", self.batch_size, minimum=1)
            if self.data == "population":
                raise ValueError(
                    "batch_size needs data='empirical' (the population model has no rows to batch)"
                )
        names = list(critical_points(self.c).phase.values)
        phases = tuple(p.strip().replace("−", "-") for p in self.phases if p.strip())
        phases = tuple(str(p) for p in names) if phases in ((), ("all",)) else phases
        for p in phases:
            if p not in names:
                raise ValueError(f"unknown phase {p!r} at c={self.c}; allowed: {', '.join(names)} or 'all'")
        object.__setattr__(self, "phases", phases)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["phases"] = list(self.phases)
        return d


def _model(st: LlcSettings):
    from ..models.data import tms_inputs
    from ..models.tms import tms_model, tms_population_model

    if st.data == "population":
        return tms_population_model(st.c, n=st.n)
    return tms_model(tms_inputs(st.n, st.c, seed=st.seed))


def run(settings: LlcSettings, *, progress: bool = False) -> tuple[xr.Dataset, dict]:
    """λ̂ at every phase of ``settings``: (Dataset over ``phase`` with llc, llc_se, lambda_theory,
    lambda_source, hessian_negative, loss_star, nbeta, share_below_w_star, acceptance, leak (share of
    draws whose k-gon label left the phase), metastable_exit (the phase it is left for without a
    barrier, "" if none), notes; {phase: the estimate's InferenceData})."""
    from tqdm.auto import tqdm

    from ..inference.llc import estimate_llc
    from ..theory import critical_points, kgon, parse_phase

    st = settings
    cat = critical_points(st.c)
    model = _model(st)
    fields = (
        "llc",
        "llc_se",
        "lambda_theory",
        "hessian_negative",
        "loss_star",
        "nbeta",
        "share_below_w_star",
        "acceptance",
        "leak",
    )
    out = {f: np.full(len(st.phases), np.nan) for f in fields}
    sources, notes, exits, idatas = [], [], [], {}
    for i, p in enumerate(tqdm(st.phases, desc="λ̂", unit="phase", disable=not progress)):
        k, s, f = parse_phase(p)
        point = kgon(k, st.c, sigma=s, phi=f)
        res = estimate_llc(
            model,
            {"W": point.W, "b": point.b},
            sampler=st.sampler,
            gamma=st.gamma,
            nbeta=st.nbeta,
            chains=st.chains,
            draws=st.draws,
            tune=st.tune,
            step_size=st.step_size,
            batch_size=st.batch_size,
            refine=st.refine,
            confine=st.confine or None,
            seed=st.seed,
        )
        row = cat.sel(phase=p)
        lam, neg = float(row.lambda_), int(row.hessian_negative)
        said = []
        if neg:
            said.append(
                f"saddle of L ({neg} negative-curvature directions): λ̂ is not a learning coefficient"
            )  # fmt: skip
        elif not math.isfinite(lam):
            said.append("ESTIMATE (theory unknown)")
        d = res.diagnostics
        if d["metastable_exit"]:
            said.append(
                f"METASTABLE: the critical set is left for {d['metastable_exit'][0]} without a barrier "
                f"through {d['metastable_exit'][1]}; λ̂ is that of the set while the sampler stays in it "
                f"(leak {100 * d['leak']:.1f}%)"
            )
        said += res.warnings
        values = (
            res.llc_mean,
            res.llc_se,
            lam,
            neg,
            res.loss_star,
            res.idata.posterior.attrs["nbeta"],
            d["share_below_w_star"],
            d["acceptance"],
            d["leak"],
        )
        for name, v in zip(fields, values):
            out[name][i] = v
        sources.append(str(row.lambda_source.item()))
        exits.append(d["metastable_exit"][0] if d["metastable_exit"] else "")
        notes.append(" | ".join(said))
        idatas[p] = res.idata
    ds = xr.Dataset(
        {
            **{f: ("phase", v) for f, v in out.items()},
            "lambda_source": ("phase", np.array(sources, dtype=str)),
            "metastable_exit": ("phase", np.array(exits, dtype=str)),
            "notes": ("phase", np.array(notes, dtype=str)),
        },
        coords={"phase": list(st.phases)},
        attrs={
            **{f"setting_{k}": str(v) for k, v in st.to_dict().items()},
            "formula": "llc = n*beta*(E[L_n(w)] - L_n(w*)) under exp(-n*beta*L_n(w) - gamma/2 |w - w*|^2)",
        },
    )
    return ds, idatas


def table(ds: xr.Dataset) -> str:
    """The terminal table: phase, λ̂ ± se, theory λ, leak, notes (first clause of each)."""
    lines = [f"{'phase':<9}{'λ̂':>9}{'± se':>8}{'λ theory':>10}{'leak':>7}   notes"]
    for p in ds.phase.values:
        r = ds.sel(phase=p)
        lam = float(r.lambda_theory)
        short = "; ".join(w.split(":")[0] for w in str(r.notes.item()).split(" | ") if w)
        lines.append(
            f"{p:<9}{float(r.llc):>9.3f}{float(r.llc_se):>8.3f}"
            f"{(f'{lam:g}' if math.isfinite(lam) else 'unknown'):>10}{float(r.leak):>7.1%}   {short}"
        )
    return "\n".join(lines)


def report(ds: xr.Dataset, idatas: dict, out) -> dict[str, Path]:
    """Write ``llc.csv`` (one row per phase), ``llc.nc`` and each estimate's ``llc_<phase>.nc`` into
    ``out``."""
    from ..store.atomic import write_netcdf, write_text

    out = Path(out)
    files = {
        "csv": write_text(out / "llc.csv", ds.to_dataframe().reset_index().to_csv(index=False)),
        "nc": write_netcdf(out / "llc.nc", ds),
    }
    for p, idata in idatas.items():
        files[f"idata_{p}"] = write_netcdf(out / f"llc_{p}.nc", idata)
    return files


def main(settings: LlcSettings, out=None, *, progress: bool = True) -> int:
    """Estimate, print the table, and write ``llc.csv`` and the InferenceData when ``out`` is given (the
    CLI's ``llc``)."""
    st = settings
    print(
        f"λ̂ at c={st.c}, {st.data} loss, n={st.n}, γ={st.gamma:g}, {st.sampler}, {st.chains} chains, "
        f"confinement κ={st.confine:g}"
    )
    ds, idatas = run(st)
    print(table(ds))
    if out:
        files = report(ds, idatas, out)
        print(f"wrote {files['csv']} and one InferenceData per phase")
    return 0


COMMAND = Command(
    "llc",
    "local learning coefficient λ̂ at catalogue critical points (NUTS or SGLD)",
    LlcSettings,
    main,
    None,
)
