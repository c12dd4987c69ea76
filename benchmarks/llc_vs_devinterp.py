"""λ̂ side by side with devinterp 1.x, in one process, at equal gradient evaluations.

Peers, on the same data, the same w*, the same nβ = n/log n, γ and ε:

1. devinterp 1.x SGLD (PyTorch, CPU), ``estimate_learning_coeff_with_summary`` with nβ passed
   explicitly (its default would use the batch size, SPEC 3);
2. tms-bayes SGLD (JAX, chains vmapped);
3. tms-bayes RMSProp-SGLD (ε/10: its preconditioner G ≤ 10 multiplies the step);
4. tms-bayes NUTS (blackjax, adapted), with its draws chosen so that its leapfrog steps (gradient
   evaluations, adaptation included) match the SGLD budget.

Models: the normal crossing y = x·w₁w₂² + ε (λ = 1/4; the exact finite-n value on the dataset is
computed by quadrature) and the TMS 6-gon at n = 1000 (λ = 8.5 asymptotically; there is no exact
finite-n value, so the table also gives the population-model estimate at n = 1e7 as a reference).
Each method is repeated with 10 seeds (devinterp twice: with disjoint chain seeds per repeat, and with
its own int-seed convention seed + chain, under which consecutive repeats share three of four chains); printed: mean λ̂, spread (SD across repeats), mean absolute
error against λ (and against the finite-n value where known), median wall time per estimate
(compilation included: each estimate is a fresh call), gradient evaluations, and the ratios.

devinterp is a benchmark peer, not a dependency:  pip install torch==2.13.0 "devinterp<2"

Usage:  python benchmarks/llc_vs_devinterp.py [--repeats 10] [--chains 4] [--steps 5000] [--eps 1e-3] [--gamma 1]
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")

from tms_bayes.inference.llc import estimate_llc  # noqa: E402
from tms_bayes.models.data import tms_inputs  # noqa: E402
from tms_bayes.models.known import known_data, normal_crossing_llc, normal_crossing_model  # noqa: E402
from tms_bayes.models.tms import tms_model, tms_population_model  # noqa: E402
from tms_bayes.theory import kgon  # noqa: E402


def devinterp_llc(kind, data, w_star, *, nbeta, gamma, eps, chains, steps, burn, seed, disjoint=True):
    """devinterp's λ̂.  devinterp seeds chain i with ``seed + i`` when given an int, so repeats with seeds
    0, 1, 2, … share all but one chain (repeat r's chains 1–3 are repeat r+1's chains 0–2) and their spread
    understates the estimator's: ``disjoint`` (default) gives repeat r the chain seeds r·chains + i."""
    import torch
    from devinterp.optim.sgld import SGLD
    from devinterp.slt.sampler import estimate_learning_coeff_with_summary
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(seed)
    if kind == "normal_crossing":

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.w = torch.nn.Parameter(torch.tensor(np.asarray(w_star["w"]), dtype=torch.float64))

            def forward(self, x):
                return x * self.w[0] * self.w[1] ** 2

        x, y = torch.tensor(data["x"]), torch.tensor(data["y"])
        ds = TensorDataset(x, y)

        def evaluate(model, batch):
            xb, yb = batch
            return 0.5 * torch.mean((yb - model(xb)) ** 2)  # per-sample NLL − const, as in our model

    else:

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.W = torch.nn.Parameter(torch.tensor(np.asarray(w_star["W"]), dtype=torch.float64))
                self.b = torch.nn.Parameter(torch.tensor(np.asarray(w_star["b"]), dtype=torch.float64))

            def forward(self, x):
                return torch.relu(x @ (self.W.T @ self.W) + self.b)

        X = torch.tensor(data["X"])
        ds = TensorDataset(X, X)

        def evaluate(model, batch):
            xb, _ = batch
            return torch.mean(torch.sum((xb - model(xb)) ** 2, dim=1))  # L_n (SPEC 1)

    model = Net()
    loader = DataLoader(ds, batch_size=len(ds), shuffle=False)
    out = estimate_learning_coeff_with_summary(
        model, loader, evaluate=evaluate, sampling_method=SGLD,
        optimizer_kwargs={"lr": eps, "localization": gamma, "nbeta": nbeta},
        num_chains=chains, num_draws=steps - burn, num_burnin_steps=burn, num_steps_bw_draws=1,
        seed=[seed * chains + i for i in range(chains)] if disjoint else seed, verbose=False, online=False,
    )
    return float(out["llc/mean"])


def run_method(name, fn, repeats):
    vals, times = [], []
    for r in range(repeats):
        t = time.perf_counter()
        vals.append(fn(r))
        times.append(time.perf_counter() - t)
    return name, np.asarray(vals), float(np.median(times))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--steps", type=int, default=5000, help="SGLD steps per chain, burn-in included (default 5000)")
    p.add_argument("--eps", type=float, default=1e-3)
    p.add_argument("--gamma", type=float, default=1.0)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--models", default="normal_crossing,tms6")
    p.add_argument(
        "--devinterp-seeds", default="disjoint", choices=("disjoint", "offset", "both"),
        help="devinterp chain seeds per repeat: disjoint (r·chains + i), offset (devinterp's r + i), or both",
    )  # fmt: skip
    a = p.parse_args(argv)
    burn = a.steps // 5
    budget = a.chains * a.steps
    print(f"budget: {budget} gradient evaluations per estimate ({a.chains} chains x {a.steps} steps, burn-in {burn}); ε = {a.eps:g}, γ = {a.gamma:g}, n = {a.n}, nβ = n/log n")

    for kind in a.models.split(","):
        if kind == "normal_crossing":
            data, w_star = known_data("normal_crossing", a.n, seed=0, k=(1, 2))
            model = normal_crossing_model(data["x"], data["y"], (1, 2))
            lam, lam_n = 0.25, normal_crossing_llc(data["x"], data["y"], (1, 2), gamma=a.gamma)
            ref_note = f"λ = 1/4; exact finite-n value on this dataset (quadrature) = {lam_n:.4f}"
        else:
            data = {"X": tms_inputs(a.n, 6, seed=0)}
            pt = kgon(6, 6)
            w_star = {"W": pt.W, "b": pt.b}
            model = tms_model(data["X"])
            lam, lam_n = 8.5, float("nan")
            pop = estimate_llc(tms_population_model(6, n=10_000_000), w_star, gamma=a.gamma, draws=400, seed=0)
            ref_note = f"λ = 8.5; population-model λ̂ at n = 1e7: {pop.llc_mean:.3f} ± {pop.llc_se:.3f}; no exact finite-n value"
        nbeta = a.n / math.log(a.n)
        kw = {"gamma": a.gamma, "nbeta": nbeta, "chains": a.chains}
        pilot = estimate_llc(model, w_star, sampler="nuts", draws=200, tune=200, target_accept=0.9, **kw)
        per_transition = pilot.diagnostics["grad_evals"] / (a.chains * 400)
        nuts_total = max(int(budget / (a.chains * per_transition)), 45)
        nuts_tune = nuts_total // 3  # at least 15 adaptation + 30 kept transitions
        nuts_draws = nuts_total - nuts_tune
        print(f"\n== {kind}: {ref_note}")
        print(f"   NUTS: {per_transition:.1f} leapfrog steps per transition -> tune {nuts_tune} + draws {nuts_draws} per chain")

        rows = []
        for label, disjoint in (("devinterp SGLD", True), ("devinterp (seed+i)", False)):
            if a.devinterp_seeds == "both" or a.devinterp_seeds == ("disjoint" if disjoint else "offset"):
                rows.append(run_method(label, lambda r, d=disjoint: devinterp_llc(kind, data, w_star, nbeta=nbeta, gamma=a.gamma, eps=a.eps, chains=a.chains, steps=a.steps, burn=burn, seed=r, disjoint=d), a.repeats))
        rows.append(run_method("tms-bayes SGLD", lambda r: estimate_llc(model, w_star, sampler="sgld", step_size=a.eps, draws=a.steps, burn_in=burn, seed=r, **kw).llc_mean, a.repeats))
        rows.append(run_method("tms-bayes RMSProp", lambda r: estimate_llc(model, w_star, sampler="rmsprop_sgld", step_size=a.eps / 10, draws=a.steps, burn_in=burn, seed=r, **kw).llc_mean, a.repeats))
        nuts_evals = []

        def nuts(r):
            res = estimate_llc(model, w_star, sampler="nuts", tune=nuts_tune, draws=nuts_draws, target_accept=0.9, seed=r, **kw)
            nuts_evals.append(res.diagnostics["grad_evals"])
            return res.llc_mean

        rows.append(run_method("tms-bayes NUTS", nuts, a.repeats))
        evals = {"devinterp SGLD": budget, "devinterp (seed+i)": budget, "tms-bayes SGLD": budget, "tms-bayes RMSProp": budget, "tms-bayes NUTS": int(np.mean(nuts_evals))}
        print(f"   {'method':<16}{'mean λ̂':>9}{'SD':>8}{'|err| λ':>9}{'|err| λ_n':>10}{'wall s':>8}{'grads':>8}")
        base = rows[0]
        for name, v, t in rows:
            err = float(np.mean(np.abs(v - lam)))
            err_n = float(np.mean(np.abs(v - lam_n))) if math.isfinite(lam_n) else float("nan")
            print(f"   {name:<16}{v.mean():>9.4f}{v.std(ddof=1):>8.4f}{err:>9.4f}{err_n:>10.4f}{t:>8.2f}{evals[name]:>8d}")
            print("      per repeat: " + " ".join(f"{x:.3f}" for x in v))
        for name, v, t in rows[1:]:
            ratio_err = np.mean(np.abs(base[1] - lam)) / max(np.mean(np.abs(v - lam)), 1e-12)
            ratio_sd = base[1].std(ddof=1) / max(v.std(ddof=1), 1e-12)
            msg = f"   {name} vs devinterp: {base[2] / t:.2f}x faster, error against λ {ratio_err:.2f}x lower, spread {ratio_sd:.2f}x lower"
            if math.isfinite(lam_n):
                msg += f", error against λ_n {np.mean(np.abs(base[1] - lam_n)) / max(np.mean(np.abs(v - lam_n)), 1e-12):.2f}x lower"
            print(msg)


if __name__ == "__main__":
    main()
