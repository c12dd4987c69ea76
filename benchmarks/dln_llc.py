"""λ̂ against the known λ of deep linear networks (Aoyagi 2024), at four sizes fixed in advance.

Sizes (widths, true rank → parameters): (3,3,3,3) r=1 → 27; (10,10,10,10) r=3 → 300;
(20,30,30,20) r=5 → 2 100; (50,60,60,60,50) r=10 → 13 200.  The loss is the population loss of
``tms_bayes.models.dln.dln_population_model`` (no dataset noise) at sample size n; w* is
``dln_truth(widths, r, seed=0)``.  Every hyperparameter is fixed across sizes and was not tuned to the
known λ: nβ = n/log n, γ, the step ε of each SGLD variant, chains and steps (equal gradient evaluations
for SGLD, RMSProp-SGLD and devinterp; NUTS is given tune + draws and its leapfrog steps are counted).

Peers, in one process: tms-bayes NUTS, SGLD, RMSProp-SGLD and, when installed, devinterp 1.x's SGLD
on the same population loss (its ``evaluate`` returns L(w); devinterp is never a dependency:
``pip install torch==2.13.0 "devinterp<2"``).  Printed per size and method: λ̂ (mean over repeats),
SD over repeats, λ̂/λ, the mean reported SE, MALA acceptance (SGLD variants), gradient evaluations and
the median wall time per estimate (compilation included).

Usage:  python benchmarks/dln_llc.py [--n 10000] [--gamma 1] [--chains 4] [--steps 2000]
        [--eps 1e-5] [--rms-eps 1e-6] [--nuts-draws 200] [--repeats 3] [--sizes 0,1,2,3]
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")

from tms_bayes.inference.llc import estimate_llc  # noqa: E402
from tms_bayes.models.dln import (  # noqa: E402
    dln_dimension,
    dln_learning_coefficient,
    dln_population_model,
    dln_truth,
    product,
)

SIZES = [((3, 3, 3, 3), 1), ((10, 10, 10, 10), 3), ((20, 30, 30, 20), 5), ((50, 60, 60, 60, 50), 10)]


def devinterp_llc(truth, *, nbeta, gamma, eps, chains, steps, burn, seed):
    """devinterp 1.x SGLD on the same population loss; None when devinterp is not installed."""
    try:
        import torch
        from devinterp.optim.sgld import SGLD
        from devinterp.slt.sampler import estimate_learning_coeff_with_summary
        from torch.utils.data import DataLoader, TensorDataset
    except ImportError:
        return None
    torch.manual_seed(seed)
    target = torch.tensor(product(truth))
    names = sorted(truth, key=lambda k: int(k[1:]))

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ParameterList(
                [torch.nn.Parameter(torch.tensor(np.asarray(truth[k]), dtype=torch.float64)) for k in names]
            )

        def forward(self, _):
            out = self.layers[0]
            for W in self.layers[1:]:
                out = W @ out
            return out

    def evaluate(model, batch):
        return 0.5 * torch.sum((model(None) - target) ** 2)  # the population loss L(w)

    loader = DataLoader(TensorDataset(torch.zeros(1), torch.zeros(1)), batch_size=1)
    out = estimate_learning_coeff_with_summary(
        Net(), loader, evaluate=evaluate, sampling_method=SGLD,
        optimizer_kwargs={"lr": eps, "localization": gamma, "nbeta": nbeta},
        num_chains=chains, num_draws=steps - burn, num_burnin_steps=burn, num_steps_bw_draws=1,
        seed=seed, verbose=False, online=False,
    )  # fmt: skip
    return float(out["llc/mean"]), float("nan"), float("nan"), chains * steps


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--gamma", type=float, default=1.0)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--steps", type=int, default=2000, help="SGLD steps per chain, burn-in (1/5) included")
    p.add_argument("--eps", type=float, default=1e-5, help="SGLD step (tms-bayes and devinterp)")
    p.add_argument("--rms-eps", type=float, default=1e-6, help="RMSProp-SGLD step (G ≤ 1/δ = 10 multiplies it)")
    p.add_argument("--nuts-draws", type=int, default=200, help="NUTS draws per chain (tune = the same)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--sizes", default="0,1,2,3")
    p.add_argument("--methods", default="nuts,sgld,rmsprop_sgld,devinterp")
    a = p.parse_args(argv)
    nbeta = a.n / math.log(a.n)
    burn = a.steps // 5
    print(
        f"n = {a.n} (nβ = {nbeta:.1f}), γ = {a.gamma:g}, {a.chains} chains; SGLD/devinterp ε = {a.eps:g}, "
        f"RMSProp-SGLD ε = {a.rms_eps:g} (α 0.99, δ 0.1), {a.steps} steps (burn-in {burn}); "
        f"NUTS {a.nuts_draws} + {a.nuts_draws}; {a.repeats} repeats"
    )
    print(f"{'params':>7}{'λ':>9}  {'method':<14}{'λ̂':>10}{'SD':>8}{'λ̂/λ':>7}{'SE':>8}{'acc':>6}{'grads':>10}{'wall s':>8}")
    for i in (int(s) for s in a.sizes.split(",")):
        widths, r = SIZES[i]
        truth = dln_truth(widths, r, seed=0)
        lam = dln_learning_coefficient(widths, r)
        model = dln_population_model(widths, truth, n=a.n)
        kw = {"gamma": a.gamma, "nbeta": nbeta, "chains": a.chains}

        def ours(sampler, seed):
            if sampler == "nuts":
                res = estimate_llc(model, truth, sampler="nuts", tune=a.nuts_draws, draws=a.nuts_draws, seed=seed, **kw)
            else:
                eps = a.eps if sampler == "sgld" else a.rms_eps
                res = estimate_llc(model, truth, sampler=sampler, step_size=eps, draws=a.steps, burn_in=burn, seed=seed, **kw)
            d = res.diagnostics
            return res.llc_mean, res.llc_se, d["acceptance"], d["grad_evals"]

        for method in a.methods.split(","):
            vals, times = [], []
            for rep in range(a.repeats):
                t = time.perf_counter()
                if method == "devinterp":
                    v = devinterp_llc(truth, nbeta=nbeta, gamma=a.gamma, eps=a.eps, chains=a.chains,
                                      steps=a.steps, burn=burn, seed=rep)  # fmt: skip
                    if v is None:
                        break
                else:
                    v = ours(method, rep)
                times.append(time.perf_counter() - t)
                vals.append(v)
            if not vals:
                print(f"{dln_dimension(widths):>7}{lam:>9.1f}  {method:<14}(not installed)")
                continue
            v = np.asarray(vals, dtype=float)
            print(
                f"{dln_dimension(widths):>7}{lam:>9.1f}  {method:<14}{v[:, 0].mean():>10.2f}"
                f"{v[:, 0].std(ddof=1) if len(v) > 1 else float('nan'):>8.2f}{v[:, 0].mean() / lam:>7.3f}"
                f"{np.nanmean(v[:, 1]):>8.2f}{np.nanmean(v[:, 2]):>6.2f}{int(v[:, 3].mean()):>10d}"
                f"{np.median(times):>8.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
