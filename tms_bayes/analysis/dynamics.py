"""SGD trajectories → plateaus → catalogue critical points → transitions → the BAH check (SPEC 4).

**Plateau rule.**  On the log-spaced checkpoints t_i (steps; the initial point t = 0 is placed at
t = 1 step), the loss is on a plateau between consecutive checkpoints when the log-log slope is small,

    |log L(t_{i+1}) − log L(t_i)| ≤ slope_tol · log(t_{i+1} / t_i),

and a plateau is a maximal run of such intervals that spans at least a factor ``min_span`` in t
(default: slope_tol = 0.02, min_span = 2).  Loss falling between plateaus (a transition) has
slopes far above that.  The level of a plateau is the loss at its last checkpoint.

**Matching.**  A plateau is matched to the catalogue (:func:`tms_bayes.theory.critical_points`) by
the exact k-gon label at its last checkpoint (:func:`tms_bayes.analysis.phases.classify_tms`), checked
against the loss level: matched when the labelled catalogue point's L is within ``loss_tol`` of the
plateau's closed-form L (a finite-n fixed point of SGD sits O(1/√n) from the critical point of L).
An unclassified plateau is matched by loss alone and flagged ``by="loss"``; a label whose loss does not
agree is flagged ``by="label (loss mismatch)"`` and, like a plateau near no catalogue point, is left out
of sequences and transitions (it is still listed).

**BAH (operational form, SPEC 4).**  For each observed transition α → β: ΔL = L_β − L_α < 0 and
Δλ = λ_β − λ_α > 0, both ends from **one** estimator: the catalogue's λ where theory gives it at
both ends and neither is a saddle of L, otherwise the trajectory's λ̂ at both (mean over each
plateau's checkpoints, with its standard error).  Transitions from or to a saddle (negative Hessian
directions, e.g. 4+) are marked: λ̂ there measures the local volume, not a learning coefficient.
Verdict per condition: ``pass``, ``fail``, or ``inconclusive`` when |Δλ| < 2 SE.  Along consecutive
transitions of a run, r = ΔL/Δλ must increase: the Bayesian transition α → β happens where
n/log n = −Δλ/ΔL = −1/r, so r increasing means each next transition has its Bayesian antecedent at
larger n.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd
import xarray as xr

from .. import _validate
from ..theory import critical_points
from .phases import UNCLASSIFIED, Rule, classify_tms

__all__ = [
    "detect_plateaus",
    "label_checkpoints",
    "match_plateaus",
    "trajectory_table",
    "transition_table",
    "bah_check",
    "bah_summary",
]


def detect_plateaus(loss, steps, *, slope_tol: float = 0.02, min_span: float = 2.0) -> list[tuple[int, int]]:
    """Plateaus of one loss curve (module docstring): a list of (first, last) checkpoint indices."""
    loss = _validate.finite_array("loss", loss)
    steps = _validate.finite_array("steps", steps)
    if loss.ndim != 1 or loss.shape != steps.shape:
        raise ValueError(f"loss and steps must be 1-D of equal length, got {loss.shape} and {steps.shape}")
    if np.any(np.diff(steps) <= 0) or np.any(steps < 0) or np.any(loss <= 0):
        raise ValueError("steps must be increasing and >= 0, and loss > 0")
    slope_tol = _validate.positive("slope_tol", slope_tol)
    if not (math.isfinite(min_span) and min_span >= 1):
        raise ValueError(f"min_span must be a finite factor >= 1, got {min_span!r}")
    t = np.maximum(steps, 1.0)
    flat = np.abs(np.diff(np.log(loss))) <= slope_tol * np.diff(np.log(t)) + 1e-12
    out, i = [], 0
    while i < len(flat):
        if not flat[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(flat) and flat[j + 1]:
            j += 1
        first, last = i, j + 1  # checkpoints spanned by intervals i..j
        if t[last] / t[first] >= min_span:
            out.append((first, last))
        i = j + 1
    return out


def label_checkpoints(ds: xr.Dataset, thresholds: Rule | None = None) -> xr.DataArray:
    """Exact k-gon label of every (run, checkpoint)."""
    return xr.DataArray(
        classify_tms(ds.W.values, ds.b.values, thresholds),
        dims=("run", "checkpoint"),
        coords={"run": ds.run, "checkpoint": ds.checkpoint},
        name="label",
    )


def match_plateaus(
    ds: xr.Dataset,
    *,
    labels: xr.DataArray | None = None,
    catalogue: xr.Dataset | None = None,
    slope_tol: float = 0.02,
    min_span: float = 2.0,
    loss_tol: float = 0.005,
) -> pd.DataFrame:
    """One row per plateau of every run: run, first/last checkpoint and step, label, matched phase,
    how it was matched, plateau L and L_n, the catalogue's L and λ, and λ̂ ± SE over the plateau."""
    labels = label_checkpoints(ds) if labels is None else labels
    cat = critical_points(int(ds.attrs.get("c", ds.sizes["feature"]))) if catalogue is None else catalogue
    cat_phase, cat_loss, cat_lam = cat.phase.values, cat.loss.values, cat.lambda_.values
    cat_saddle = cat.hessian_negative.values > 0
    loss_tol = _validate.positive("loss_tol", loss_tol)
    steps = ds.step.values.astype(float)
    rows = []
    for ri, run in enumerate(ds.run.values):
        L = ds.loss.values[ri]
        for first, last in detect_plateaus(L, steps, slope_tol=slope_tol, min_span=min_span):
            label = str(labels.values[ri, last])
            level = float(L[last])
            if label != UNCLASSIFIED and label in cat_phase:
                j = int(np.flatnonzero(cat_phase == label)[0])
                by = "label" if abs(cat_loss[j] - level) <= loss_tol else "label (loss mismatch)"
            else:
                j = int(np.argmin(np.abs(cat_loss - level)))
                by = "loss" if abs(cat_loss[j] - level) <= loss_tol else "none"
            lam_hat = ds.llc.values[ri, first : last + 1]
            se = ds.llc_se.values[ri, first : last + 1]
            m = np.isfinite(lam_hat)
            rows.append({
                "run": int(run), "first": first, "last": last,
                "step_first": int(steps[first]), "step_last": int(steps[last]),
                "label": label, "phase": cat_phase[j] if by != "none" else UNCLASSIFIED,
                "matched_by": by, "matched": by in ("label", "loss"),
                "loss": level, "loss_n": float(ds.loss_n.values[ri, last]),
                "catalogue_loss": float(cat_loss[j]), "lambda_theory": float(cat_lam[j]),
                "saddle": bool(cat_saddle[j]) and by != "none",
                "llc": float(np.mean(lam_hat[m])) if m.any() else float("nan"),
                "llc_se": float(np.sqrt(np.sum(se[m] ** 2)) / m.sum()) if m.any() else float("nan"),
            })  # fmt: skip
    return pd.DataFrame(rows)


def trajectory_table(plateaus: pd.DataFrame) -> pd.DataFrame:
    """Per run: the sequence of visited critical points (consecutive repeats merged) and the final one."""
    out = []
    for run, g in plateaus[plateaus.matched].groupby("run", sort=True):
        seq = []
        for p in g.sort_values("first").phase:
            if not seq or seq[-1] != p:
                seq.append(p)
        out.append({"run": run, "sequence": " → ".join(seq), "final": seq[-1], "transitions": len(seq) - 1})
    return pd.DataFrame(out)


def _transitions(plateaus: pd.DataFrame):
    """Consecutive matched plateaus of a run in different phases (unmatched plateaus are skipped)."""
    for run, g in plateaus[plateaus.matched].groupby("run", sort=True):
        g = g.sort_values("first")
        prev = None
        for _, row in g.iterrows():
            if prev is not None and row.phase != prev.phase:
                yield run, prev, row
            prev = row


def transition_table(plateaus: pd.DataFrame) -> pd.DataFrame:
    """Counts of each observed transition α → β across runs, most frequent first."""
    counts = Counter((a.phase, b.phase) for _, a, b in _transitions(plateaus))
    rows = [{"from": a, "to": b, "count": c} for (a, b), c in counts.most_common()]
    return pd.DataFrame(rows, columns=["from", "to", "count"])


def _saddle(row) -> bool:
    return bool(row.get("saddle", False))


def _pair_lambdas(a, b):
    """λ at both ends of α → β from **one** estimator: the catalogue's λ at both where theory gives both
    and neither end is a saddle, otherwise λ̂ at both (mean over each plateau's checkpoints, ± SE).
    Mixing the two would put two estimators with different biases on the ends of one Δλ (SGLD λ̂ at
    n = 1000 is far below the asymptotic λ).  Returns (λ_α, SE_α, λ_β, SE_β, source)."""
    if math.isfinite(a.lambda_theory) and math.isfinite(b.lambda_theory) and not (_saddle(a) or _saddle(b)):
        return a.lambda_theory, 0.0, b.lambda_theory, 0.0, "theory"
    return a.llc, a.llc_se, b.llc, b.llc_se, "llc_hat"


def bah_check(plateaus: pd.DataFrame, *, z: float = 2.0) -> pd.DataFrame:
    """One row per observed transition with ΔL, Δλ (± SE) from one estimator at both ends
    (:func:`_pair_lambdas`; ``lambda_source`` says which), which ends are saddles of L (``saddle``:
    "", "from", "to" or "both"; λ̂ there is not a learning coefficient) and the verdicts (module
    docstring)."""
    rows = []
    for run, a, b in _transitions(plateaus):
        la, sa, lb, sb, source = _pair_lambdas(a, b)
        saddle = {(False, False): "", (True, False): "from", (False, True): "to", (True, True): "both"}[
            (_saddle(a), _saddle(b))
        ]
        dL = b.loss - a.loss
        dlam, se = lb - la, math.hypot(sa, sb)
        if not math.isfinite(dlam) or abs(dlam) < z * se:
            lam_v = "inconclusive"
        else:
            lam_v = "pass" if dlam > 0 else "fail"
        loss_v = "pass" if dL < 0 else "fail"
        rows.append({
            "run": run, "from": a.phase, "to": b.phase, "step": int(b.step_first),
            "dL": dL, "dlambda": dlam, "dlambda_se": se,
            "lambda_source": source, "saddle": saddle, "loss_verdict": loss_v, "lambda_verdict": lam_v,
            "verdict": (
                "fail" if "fail" in (loss_v, lam_v)
                else ("inconclusive" if lam_v == "inconclusive" else "pass")
            ),
            "ratio": dL / dlam if math.isfinite(dlam) and dlam != 0 else float("nan"),
        })  # fmt: skip
    df = pd.DataFrame(
        rows,
        columns=[
            "run",
            "from",
            "to",
            "step",
            "dL",
            "dlambda",
            "dlambda_se",
            "lambda_source",
            "saddle",
            "loss_verdict",
            "lambda_verdict",
            "verdict",
            "ratio",
        ],
    )
    # ΔL/Δλ increasing along consecutive transitions of the same run
    inc = []
    for _, g in df.groupby("run", sort=False):
        r = g.ratio.values
        inc += [float("nan")] + [
            float(r[i] > r[i - 1]) if np.isfinite(r[i]) and np.isfinite(r[i - 1]) else float("nan")
            for i in range(1, len(r))
        ]
    df["ratio_increases"] = inc if len(df) else []
    return df


def bah_summary(bah: pd.DataFrame) -> dict:
    """Counts of pass / fail / inconclusive, and of consecutive pairs whose ΔL/Δλ increases."""
    pairs = bah.ratio_increases.dropna() if len(bah) else pd.Series(dtype=float)
    return {
        "transitions": len(bah),
        **{k: int((bah.verdict == k).sum()) if len(bah) else 0 for k in ("pass", "fail", "inconclusive")},
        "at_saddle": int((bah.saddle != "").sum()) if len(bah) else 0,
        "consecutive_pairs": len(pairs),
        "ratio_increases": int(pairs.sum()),
    }
