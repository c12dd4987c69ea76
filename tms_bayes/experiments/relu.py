"""The ReLU phase-transition experiments (SPEC 5, Carroll): a truth sweep over θ (PT1) or ϑ (PT2), the
phase fractions and critical value, posterior mass per phase by SMC, and λ̂ per phase at chosen values.

:func:`run` — the truth sweep (:mod:`tms_bayes.inference.truth_sweep`); :func:`run_smc_mass` — SMC on
the sweep's datasets at the ``--smc-values`` (:mod:`tms_bayes.inference.relu_smc`) and
:func:`smc_phase_mass` — the posterior mass per phase with intervals beside the chains' shares on the
same datasets; :func:`analyse` — λ̂ per phase at ``llc_values`` (each must be a value of the sweep:
checked before any work by :func:`check_llc_values`) and the report
(:mod:`tms_bayes.analysis.relu_report`) written to ``<out>/report``.

**Two protocols** (``--protocol``).  ``tms-bayes`` (default): the sweep settings as given.
``published``: the protocol of Carroll's thesis code as the issue describes it — one chain per trial on
a fresh dataset started uniform(−2, 2) (as always), target acceptance 0.9, 1 000 warm-up + 4 000 kept
draws, 8 trials per θ (PT1) and 4 per ϑ (PT2), the |z| ≥ 1.5 trial filter and, for d = 2, the sample
filter (:func:`tms_bayes.analysis.relu_phases.published_sample_filter`); settings you give explicitly
(other than their defaults) are kept.  Sources: the thesis code itself is not available to us; DSLT 4
says the published posteriors are "averaged over four trials, 20,000 samples each", which disagrees
with 8 × 4 000 for PT1 — we follow the issue's reading of the code and say so in the report.  The
published fractions are shares of *all* validated samples, "neither" included (the values read off
the animation sum to 1 with "neither": θ = 1.00: .94 / 0 / .07), which is how ours are computed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from scipy import stats

from .. import __version__
from ..analysis.occupancy import bootstrap_shares
from ..analysis.relu_phases import (
    DEFAULT_EPSILON,
    PHASES,
    classify_relu,
    configurations,
    effective_weights,
    nearest_phase,
    published_sample_filter,
    phase_fractions,
    phase_mass,
    trial_draws,
    truth_sweep_labels,
)
from ..analysis.relu_report import relu_report
from ..inference.executor import ExecutorOptions, run_jobs
from ..inference.relu_smc import ReluSMC, ReluSMCSettings
from ..inference.truth_sweep import TruthSweep, TruthSweepSettings, build_trial_model, on_grid
from ..models.relu import experiment_truth
from ..store.atomic import write_netcdf
from .. import _validate
from .._options import setting
from .._parse import parse_values
from . import Command

__all__ = [
    "run",
    "run_smc_mass",
    "smc_phase_mass",
    "published_protocol",
    "PUBLISHED_PROTOCOL",
    "check_llc_values",
    "analyse",
    "phase_llc",
    "relu_sweep_report",
    "ReluAnalysis",
    "ReluJob",
    "main",
    "COMMAND",
]

#: the values at which ``tms-bayes relu`` estimates λ̂ per phase by default
LLC_DEFAULTS = {"pt1": (1.1, 1.26, math.pi / 2), "pt2": (1.0, 2.0)}

#: the published protocol's sweep settings (module docstring)
PUBLISHED_PROTOCOL = {
    "pt1": {
        "trials": 8,
        "tune": 1000,
        "draws": 4000,
        "target_accept": 0.9,
        "init_scale": 2.0,
        "prior_std": 1.0,
    },
    "pt2": {
        "trials": 4,
        "tune": 1000,
        "draws": 4000,
        "target_accept": 0.9,
        "init_scale": 2.0,
        "prior_std": 1.0,
    },
}


def published_protocol(settings: TruthSweepSettings) -> TruthSweepSettings:
    """``settings`` with the published protocol's values (:data:`PUBLISHED_PROTOCOL`) in every field
    left at its default."""
    import dataclasses

    defaults = {f.name: f.default for f in dataclasses.fields(TruthSweepSettings)}
    changes = {
        k: v
        for k, v in PUBLISHED_PROTOCOL[settings.experiment].items()
        if getattr(settings, k) == defaults[k]
    }
    return dataclasses.replace(settings, **changes)


def _llc_values(text: str):
    return () if text.strip().lower() == "none" else parse_values(text, "--llc-values")


@dataclass(frozen=True)
class ReluAnalysis:
    """How a truth sweep is analysed: phase radius, trial filter, λ̂ per phase, coarse-graining."""

    epsilon: float | None = setting(None, "phase radius ε", parse=float, show="0.3 for pt1, 0.25 for pt2")
    z_max: float = setting(1.5, "drop trials whose mean L_n has |z| >= this")
    llc_values: tuple[float, ...] | None = setting(
        None,
        "values at which to estimate λ̂ per phase, or 'none'",
        parse=_llc_values,
        show="pt1: 1.1,1.26,pi/2; pt2: 1.0,2.0 (those on the grid)",
    )
    llc_sampler: str = setting("sgld", "λ̂ sampler", choices=("sgld", "nuts"))
    llc_step_size: float = setting(1e-4, "SGLD step ε for λ̂")
    llc_draws: int = setting(2000, "λ̂ steps (SGLD) or draws (NUTS) per chain")
    coarse_grain: bool = setting(True, "skip the t-SNE + HDBSCAN comparison", flag="--no-coarse-grain")
    sample_filter: bool = setting(
        False,
        "drop draws with w_a2·q_a <= -1 on both nodes (published filter, d = 2; see --protocol)",
    )
    margin: float = setting(0.1, "nearest-configuration phases: 'neither' within this of a tie")
    radius: float = setting(1.0, "nearest-configuration phases: 'neither' beyond this distance")

    def __post_init__(self):
        if self.epsilon is not None:
            _validate.positive("epsilon", self.epsilon)
        _validate.positive("z_max", self.z_max)
        _validate.positive("margin", self.margin, strict=False)
        _validate.positive("radius", self.radius)
        _validate.positive("llc_step_size", self.llc_step_size)
        _validate.integer("llc_draws", self.llc_draws, minimum=10)
        _validate.ceiling("llc_draws", self.llc_draws, 1_000_000)


@dataclass(frozen=True)
class ReluJob:
    """``tms-bayes relu``: the truth sweep and its analysis; the λ̂ values are checked against the sweep."""

    sweep: TruthSweepSettings = setting(default_factory=TruthSweepSettings)
    analysis: ReluAnalysis = setting(default_factory=ReluAnalysis)
    smc: ReluSMCSettings = setting(default_factory=ReluSMCSettings)
    protocol: str = setting(
        "tms-bayes",
        "published: the thesis code's trials, warm-up, draws, target acceptance and sample filter",
        choices=("tms-bayes", "published"),
    )
    run_on: ExecutorOptions = setting(default_factory=ExecutorOptions)

    def __post_init__(self):
        import dataclasses

        _validate.choice("protocol", self.protocol, ("tms-bayes", "published"))
        if self.protocol == "published":
            object.__setattr__(self, "sweep", published_protocol(self.sweep))
            object.__setattr__(self, "analysis", dataclasses.replace(self.analysis, sample_filter=True))
        check_llc_values(self.sweep, self.llc_values)
        check_smc_values(self.sweep, self.smc)

    @property
    def llc_values(self) -> tuple[float, ...]:
        given = self.analysis.llc_values
        if given is not None:
            return tuple(given)
        grid = self.sweep.values  # the defaults the sweep lacks are skipped
        return tuple(v for v in LLC_DEFAULTS[self.sweep.experiment] if on_grid(v, grid))


def check_llc_values(settings: TruthSweepSettings, llc_values) -> tuple[float, ...]:
    """``llc_values`` as a tuple, refused unless every one is a value of the sweep."""
    llc_values = tuple(float(v) for v in llc_values)
    missing = [v for v in llc_values if not on_grid(v, settings.values)]
    if missing:
        raise ValueError(
            f"--llc-values must be values of the sweep; not in it: {', '.join(f'{v:g}' for v in missing)}"
        )
    return llc_values


def check_smc_values(settings: TruthSweepSettings, smc: ReluSMCSettings) -> tuple[float, ...]:
    """The SMC values, refused unless every one is a value of the sweep and the sweep has enough trials."""
    values = smc.resolved_values(settings.experiment, settings.values)
    missing = [v for v in values if not on_grid(v, settings.values)]
    if missing:
        raise ValueError(
            "--smc-values must be values of the sweep (or 'none'); not in it: "
            + ", ".join(f"{v:g}" for v in missing)
        )
    if values and smc.datasets(settings.trials) > settings.trials:
        raise ValueError(
            f"--smc-datasets must be at most --trials ({settings.trials}): SMC runs on the trials' datasets"
        )
    return values


def run(
    settings: TruthSweepSettings,
    out,
    *,
    progress: bool = True,
    log=print,
    executor: ExecutorOptions | None = None,
):
    """Run (or resume) the truth sweep into ``out``; returns the
    :class:`~tms_bayes.inference.truth_sweep.TruthSweep`.  ``executor``: where its values run (default this
    process; :mod:`tms_bayes.inference.executor`)."""
    return run_jobs(TruthSweep(settings, out), executor, progress=progress, log=log)


def run_smc_mass(
    settings: TruthSweepSettings,
    smc: ReluSMCSettings,
    out,
    *,
    progress: bool = True,
    log=print,
    executor: ExecutorOptions | None = None,
) -> ReluSMC:
    """Run (or resume) SMC on the truth sweep's datasets at the SMC values into ``out``
    (:mod:`tms_bayes.inference.relu_smc`); returns the :class:`~tms_bayes.inference.relu_smc.ReluSMC`."""
    return run_jobs(ReluSMC(settings, smc, out), executor, progress=progress, log=log)


def smc_phase_mass(
    smc_run: ReluSMC,
    sweep: TruthSweep | None = None,
    *,
    epsilon: float | None = None,
    margin: float = 0.1,
    radius: float = 1.0,
    sample_filter: bool = False,
    n_boot: int = 1000,
    seed: int = 0,
) -> xr.Dataset:
    """Posterior mass of each phase by SMC (:func:`tms_bayes.analysis.relu_phases.phase_mass`), for both
    classifiers (dim ``classifier``: "epsilon", "nearest"); with ``sample_filter`` the particles the
    published filter drops get no weight (the mass is of the filtered posterior, as the chains' shares).
    With the truth ``sweep``: the chains' shares on the same datasets (trials 0 … D−1 at the same value
    index, no trial filter: the same datasets) with percentile-bootstrap intervals over those datasets
    (``mcmc_share``, ``mcmc_lower``, ``mcmc_upper``), how often each of those chains changes phase
    (``mcmc_switches`` (value, dataset): a chain that never does reports its starting basin, not the
    mass), and the paired comparison: ``difference`` = mean over datasets of (SMC mass − chain share)
    on the same dataset, its 95 % t-interval half-width (t with D − 1 degrees of freedom × SD/√D) and
    ``agree`` = |difference| ≤ half-width — "no difference detected", which with D = 3 (t = 4.30) is
    a weak check: read it with the half-width.  Needs every SMC run finished."""
    st, rs = smc_run.truth, smc_run.settings
    D, R = smc_run.datasets, rs.smc_repeats
    missing = [smc_run.name(*j) for j in smc_run.jobs() if j not in smc_run.finished()]
    if missing:
        raise ValueError(f"{smc_run.out}: SMC runs not finished: {', '.join(missing)}; re-run to finish them")
    out = []
    for classifier in ("epsilon", "nearest"):
        labels, logw = [], []
        for i in smc_run.indices:
            tr = experiment_truth(st.experiment, st.values[i])
            truth = (tr.w, tr.b, tr.q, tr.c)
            refs = configurations(st.experiment, truth) if classifier == "nearest" else None
            lab_v, lw_v = [], []
            for t in range(D):
                lab_t, lw_t = [], []
                for r in range(R):
                    idata = smc_run.load(i, t, r)
                    w, q = idata.posterior["w"].values[0], idata.posterior["q"].values[0]
                    if classifier == "epsilon":
                        lab = classify_relu(st.experiment, w, q, truth=(truth[0], truth[2]), epsilon=epsilon)
                    else:
                        lab = nearest_phase(effective_weights(w, q), refs, margin=margin, radius=radius)
                    lw = idata.sample_stats["log_weight"].values[0]
                    if sample_filter:
                        lw = np.where(published_sample_filter(w, q), lw, -np.inf)
                    lab_t.append(lab)
                    lw_t.append(lw)
                lab_v.append(lab_t)
                lw_v.append(lw_t)
            labels.append(lab_v)
            logw.append(lw_v)
        m = phase_mass(
            np.array(labels), np.array(logw), smc_run.values, PHASES[st.experiment], n_boot=n_boot, seed=seed
        )
        if sweep is not None:
            _chains_beside(
                m, smc_run, sweep, classifier, epsilon, margin, radius, sample_filter, n_boot, seed
            )
        out.append(m)
    mass = xr.concat(out, dim=xr.DataArray(["epsilon", "nearest"], dims="classifier"))
    walls = [smc_run.load(*j).posterior.attrs["wall_time_s"] for j in smc_run.finished()]
    mass.attrs.update(
        {
            "experiment": st.experiment,
            "parameter": st.parameter,
            "n": st.n,
            "datasets": D,
            "repeats": R,
            "particles": rs.smc_particles,
            "mcmc_steps": rs.smc_mcmc_steps,
            "smc_wall_time_s": float(np.sum(walls)),
            "epsilon": epsilon if epsilon is not None else DEFAULT_EPSILON[st.experiment],
            "margin": margin,
            "radius": radius,
            "sample_filter": "published" if sample_filter else "none",
        }
    )
    return mass


def _chains_beside(m, smc_run, sweep, classifier, epsilon, margin, radius, sample_filter, n_boot, seed):
    """Add the chains' shares on the SMC datasets, their phase changes and the paired comparison to
    the mass ``m`` of one classifier (:func:`smc_phase_mass`)."""
    D = smc_run.datasets
    if any(i not in sweep.finished() for i in smc_run.indices):
        raise ValueError(f"{sweep.out} has not finished every SMC value; finish the sweep first")
    lab = truth_sweep_labels(
        sweep,
        epsilon=epsilon,
        classifier=classifier,
        margin=margin,
        radius=radius,
        sample_filter=sample_filter,
    )
    at = [sweep.finished().index(i) for i in smc_run.indices]  # the same value index, not the nearest value
    sub = lab.isel(value=at, trial=slice(0, D))
    per = phase_fractions(sub, n_boot=10).share_trial.transpose("value", "trial", "phase").values
    share, lo, hi, _ = bootstrap_shares(per, n_boot=n_boot, seed=seed)
    seq = sub.label.values
    m["mcmc_share"] = (("value", "phase"), share)
    m["mcmc_lower"] = (("value", "phase"), lo)
    m["mcmc_upper"] = (("value", "phase"), hi)
    m["mcmc_switches"] = (("value", "dataset"), (seq[..., 1:] != seq[..., :-1]).sum(axis=-1))
    # paired over datasets: the dataset-to-dataset variability cancels, the spread of the differences
    # is the two estimators' error
    diff = m.mass_run.mean("rep").transpose("value", "dataset", "phase").values - per
    mean = diff.mean(axis=1)
    half = (
        stats.t.ppf(0.975, D - 1) * diff.std(axis=1, ddof=1) / math.sqrt(D)
        if D > 1
        else np.full(mean.shape, np.nan)
    )
    m["difference"] = (("value", "phase"), mean, {"long_name": "SMC mass − chain share, mean over datasets"})
    m["difference_half_width"] = (("value", "phase"), half, {"long_name": "95 % t interval half-width"})
    m["agree"] = (("value", "phase"), np.abs(mean) <= half)


def analyse(
    sweep,
    *,
    epsilon: float | None = None,
    z_max: float = 1.5,
    llc_values=(),
    llc_sampler: str = "sgld",
    llc_kwargs: dict | None = None,
    coarse_grain: bool = True,
    progress: bool = True,
    sample_filter: bool = False,
    margin: float = 0.1,
    radius: float = 1.0,
    smc_run: ReluSMC | None = None,
    protocol: str = "tms-bayes",
):
    """λ̂ per phase at ``llc_values`` (none: skipped), the SMC posterior mass per phase of ``smc_run``
    (none: skipped) and the report in ``<sweep>/report``; returns the
    :class:`~tms_bayes.analysis.relu_report.ReluReport` (its ``llc`` holds the λ̂ table, its ``mass``
    the SMC table)."""
    llc_values = check_llc_values(sweep.settings, llc_values)
    llc = None
    if llc_values:
        labels = truth_sweep_labels(sweep, epsilon=epsilon, z_max=z_max, sample_filter=sample_filter)
        llc = phase_llc(
            sweep, labels, llc_values, sampler=llc_sampler, progress=progress, **(llc_kwargs or {})
        )
        write_netcdf(sweep.out / "report" / "llc.nc", llc)
    mass = None
    if smc_run is not None and len(smc_run.finished()) == len(smc_run.jobs()) > 0:
        mass = smc_phase_mass(
            smc_run, sweep, epsilon=epsilon, margin=margin, radius=radius, sample_filter=sample_filter
        )
        write_netcdf(sweep.out / "report" / "smc_mass.nc", mass.drop_vars("bootstrap"))
    return relu_report(
        sweep,
        sweep.out / "report",
        epsilon=epsilon,
        z_max=z_max,
        llc=llc,
        coarse_grain=coarse_grain,
        sample_filter=sample_filter,
        margin=margin,
        radius=radius,
        mass=mass,
        protocol=protocol,
    )


def phase_llc(
    sweep: TruthSweep,
    labels,
    values,
    *,
    phases=None,
    sampler: str = "sgld",
    progress: bool = True,
    **llc_kwargs,
):
    """λ̂ of each phase at a few truth values: an xarray Dataset (value, phase).

    For every requested value and phase, w* is the draw of that phase with the lowest L_n among the
    kept trials of ``labels`` (:func:`tms_bayes.analysis.relu_phases.truth_sweep_labels`); λ̂ is
    estimated on that trial's dataset with :func:`tms_bayes.inference.llc.estimate_llc`
    (nβ = n/log n, the experiments' tempering) after refining w* to the nearest local minimum of L_n;
    when refining would move w* by more than 0.5 (no local minimum near it: the phase does not hold a
    critical point at this value) λ̂ is estimated at the draw itself and the note says so.
    Phases without draws, and the catch-all "neither", give NaN.  ``llc_kwargs`` go to estimate_llc."""
    import warnings as _warnings

    from tqdm.auto import tqdm

    from ..inference.llc import estimate_llc

    st = sweep.settings
    all_values = np.array(labels.value.values, dtype=float)
    values = np.atleast_1d(np.asarray(values, dtype=float))
    picks = []
    for v in values:
        j = int(np.argmin(np.abs(all_values - v)))
        if abs(all_values[j] - v) > 1e-9 * max(1.0, abs(v)):
            raise ValueError(
                f"{st.parameter} = {v:g} is not a finished value of this sweep; finished values: "
                f"{', '.join(f'{x:.4g}' for x in all_values)}"
            )
        picks.append(j)
    phases = [p for p in np.unique(labels.label.values) if p != "neither"] if phases is None else list(phases)
    fields = (
        "llc",
        "llc_se",
        "loss_star",
        "trial",
        "draw",
        "refined_distance",
        "acceptance",
        "share_below_w_star",
    )
    out = {f: np.full((len(values), len(phases)), np.nan) for f in fields}
    notes = np.full((len(values), len(phases)), "", dtype=object)
    bar = tqdm(total=len(values) * len(phases), desc="λ̂ per phase", unit="fit", disable=not progress)
    for a, j in enumerate(picks):
        sel = labels.isel(value=j)
        index = st.values.index(float(sel.value))
        for b, p in enumerate(phases):
            inside = (sel.label.values == p) & sel.kept.values[:, None]
            bar.update(1)
            if not inside.any():
                notes[a, b] = "no draws in this phase"
                continue
            t, d = np.unravel_index(np.argmin(np.where(inside, sel.L_n.values, np.inf)), inside.shape)
            post = sweep.load(index).posterior
            w_star = {k: trial_draws(post, k)[t, d] for k in ("w", "b", "q", "c")}
            model = build_trial_model(st, index, int(t), beta=1.0)
            with _warnings.catch_warnings(record=True) as caught:
                _warnings.simplefilter("always")
                try:
                    res = estimate_llc(model, w_star, sampler=sampler, refine=True, **llc_kwargs)
                except (
                    ValueError
                ) as exc:  # no local minimum near the best draw: estimate at the draw itself, and say so
                    res = estimate_llc(model, w_star, sampler=sampler, refine=False, **llc_kwargs)
                    caught.append(
                        _warnings.WarningMessage(f"not refined ({exc})", RuntimeWarning, __file__, 0)
                    )
            vals = (
                res.llc_mean,
                res.llc_se,
                res.loss_star,
                t,
                d,
                res.diagnostics["refined_distance"],
                res.diagnostics["acceptance"],
                res.diagnostics["share_below_w_star"],
            )
            for f, v in zip(fields, vals):
                out[f][a, b] = v
            notes[a, b] = "; ".join(str(w.message) for w in caught if issubclass(w.category, RuntimeWarning))
    bar.close()
    return xr.Dataset(
        {
            **{f: (("value", "phase"), out[f]) for f in fields},
            "notes": (("value", "phase"), notes.astype(str)),
        },
        coords={"value": values, "phase": phases},
        attrs={
            "experiment": st.experiment,
            "parameter": st.parameter,
            "sampler": sampler,
            "n": st.n,
            "nbeta": st.n / math.log(st.n),
            "w_star": (
                "lowest-L_n draw of the phase (kept trials), "
                "refined to the nearest local minimum of that trial's L_n"
            ),
            **{f"llc_{k}": v for k, v in llc_kwargs.items()},
            "tms_bayes_version": __version__,
        },
    )


def relu_sweep_report(
    run_dir,
    out=None,
    *,
    epsilon: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """Phases against n of a ReLU sweep over n (fixed truth): the TMS occupancy analysis with the ReLU
    phases — shares pooled over seeds and chains with hierarchical-bootstrap intervals, chain mixing
    between phases, and where the share of the second phase overtakes the first (e.g. PT1:
    non-degenerate → degenerate) with its interval.  Writes ``labels.nc``, ``occupancy.nc``,
    ``occupancy.csv``, ``occupancy.png`` and ``report.md`` into ``out`` (default: the sweep directory);
    returns {"labels", "occupancy", "crossover", "files"}."""
    from ..analysis import plots
    from ..analysis.occupancy import empirical_crossover, empirical_occupancy
    from ..analysis.relu_phases import relu_sweep_labels
    from ..analysis.relu_report import _fmt
    from ..analysis.report import _has_tabulate
    from ..inference.sweep import load_sweep
    from ..store.atomic import write_figure, write_text

    sweep = load_sweep(run_dir)
    out = Path(out) if out is not None else Path(run_dir)
    labels = relu_sweep_labels(sweep, epsilon=epsilon, progress=progress)
    occ = empirical_occupancy(labels, n_boot=n_boot, seed=seed)
    a, b = list(labels.attrs["phases"])[:2]
    cross = None
    if len(occ.n) > 1:  # whichever of the two phases overtakes the other (last up-crossing), if either does
        found = [
            c
            for c in (empirical_crossover(occ, b, a), empirical_crossover(occ, a, b))
            if math.isfinite(c["n_crit"])
        ]
        cross = {**found[0], "kind": "empirical"} if found else None
    files = {
        "labels": write_netcdf(out / "labels.nc", labels),
        "occupancy": write_netcdf(out / "occupancy.nc", occ.drop_vars("bootstrap")),
        "csv": write_text(
            out / "occupancy.csv",
            occ[["share", "lower", "upper", "chain_share", "mean_L_n"]]
            .to_dataframe()
            .reset_index()
            .to_csv(index=False),
        ),
        "png": write_figure(
            out / "occupancy.png", plots.empirical_occupancy(occ, crossovers=[cross] if cross else None)
        ),
    }
    st = sweep.settings
    table = occ.share.to_pandas().round(3)
    lines = [
        f"# ReLU {labels.attrs['experiment'].upper()} sweep over n: {labels.attrs['truth']}",
        "",
        f"Sweep `{sweep.out}`: n = {list(st.n)}, {st.seeds} datasets × {st.chains} chains, "
        f"β = {st.beta or '1/log n'}, phases with ε = {labels.attrs['epsilon']:g} on ŵ = |q| w "
        f"(draws in no phase: '{labels.attrs['catch_all']}').",
        "",
        "## Shares of draws (pooled over datasets and chains)",
        "",
        table.to_markdown() if _has_tabulate() else table.to_string(),
        "",
        "![occupancy](occupancy.png)",
        "",
    ]
    if cross:
        lines.append(
            f"{cross['to']} overtakes {cross['from']} (last up-crossing) at n ≈ {_fmt(cross['n_crit'], 0)}, "
            f"95 % interval [{_fmt(cross['lower'], 0)}, {_fmt(cross['upper'], 0)}] "
            f"({100 * cross['fraction_crossing']:.0f}% of bootstrap replicates cross)."
        )
    unmixed = [int(n) for n, m in zip(occ.n.values, occ.mixed.values) if not m]
    if unmixed:
        lines.append(
            f"Chains did not all change phase at n = {unmixed}: shares there depend on the starting points."
        )
    files["report"] = write_text(out / "report.md", "\n".join(lines + [""]))
    return {"labels": labels, "occupancy": occ, "crossover": cross, "files": files}


def main(job: ReluJob, out=None, *, progress: bool = True) -> int:
    """Run the truth sweep into ``out`` (default ``runs/relu-<experiment>``), analyse it and print the
    phase table, the critical value and λ̂ per phase (the CLI's ``relu``)."""
    import time

    st, an = job.sweep, job.analysis
    t0 = time.perf_counter()
    sweep = run(st, out or f"runs/relu-{st.experiment}", progress=progress, executor=job.run_on)
    print(f"sweep: {len(sweep.completed)} values in {sweep.out} ({time.perf_counter() - t0:.1f} s this run)")
    smc_run = None
    if job.smc.resolved_values(st.experiment, st.values):
        t1 = time.perf_counter()
        smc_run = run_smc_mass(st, job.smc, sweep.out / "smc", progress=progress, executor=job.run_on)
        print(
            f"SMC: {len(smc_run.finished())} runs in {smc_run.out} "
            f"({time.perf_counter() - t1:.1f} s this run)"
        )
    llc_kwargs = {
        "draws": an.llc_draws,
        **({"step_size": an.llc_step_size} if an.llc_sampler == "sgld" else {}),
    }
    rep = analyse(
        sweep,
        epsilon=an.epsilon,
        z_max=an.z_max,
        llc_values=job.llc_values,
        llc_sampler=an.llc_sampler,
        llc_kwargs=llc_kwargs,
        coarse_grain=an.coarse_grain,
        progress=progress,
        sample_filter=an.sample_filter,
        margin=an.margin,
        radius=an.radius,
        smc_run=smc_run,
        protocol=job.protocol,
    )
    print(rep.table().to_string(index=False))
    t = rep.transition
    sym = "θ" if st.experiment == "pt1" else "ϑ"
    if "critical" not in t:
        print(
            f"annihilation phase last present at {sym} = {t['last_present']:.3g}, absent from {sym} = "
            f"{t['first_absent']:.3g}"
        )
    elif math.isfinite(t["critical"]):
        print(f"{sym}_c = {t['critical']:.4f}  95% interval [{t['lower']:.4f}, {t['upper']:.4f}]")
    else:
        print("no overtaking of the non-degenerate phase on this grid")
    print(f"dropped trials: {int((~rep.trials.kept).sum())} of {len(rep.trials)}")
    if rep.mass is not None:
        print(rep.mass_table().to_string(index=False))
    if rep.llc is not None:
        print(rep.llc[["llc", "llc_se"]].to_dataframe().to_string())
    print(f"report: {sweep.out}/report/report.md")
    return 0


COMMAND = Command(
    "relu",
    "ReLU phase transitions: sweep the truth (pt1: θ, pt2: ϑ), phase fractions, critical value, λ̂ per phase",
    ReluJob,
    main,
    lambda job: f"runs/relu-{job.sweep.experiment}",
    writes=("truth-sweep",),
)
