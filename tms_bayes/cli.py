"""The ``tms-bayes`` command line.  Thin: it parses arguments and calls the library.

Any bad input ends with one line on stderr (``tms-bayes: error: …``) and exit status 2, no traceback.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

__all__ = ["main", "parse_grid"]


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit status 2."""

    def error(self, message):  # noqa: D401  (argparse API)
        self.exit(2, f"tms-bayes: error: {message}\n")


def parse_grid(text: str) -> np.ndarray:
    """Parse ``start:stop:step`` (inclusive of stop) or a comma list ``100,200,400`` into sample sizes."""
    text = str(text).strip()
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) != 3 or parts[2] <= 0:
                raise ValueError
            start, stop, step = parts
            values = np.arange(start, stop + step / 2, step)
        else:
            values = np.array([float(p) for p in text.split(",") if p.strip()])
    except ValueError:
        raise ValueError(f"--n must be start:stop:step with step > 0 (e.g. 100:2000:50) or a comma list (e.g. 100,200,400), got {text!r}") from None
    if values.size == 0 or np.any(~np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"--n must give sample sizes n > 0, got {text!r}")
    return values


def parse_lambdas(text: str | None) -> dict[str, float]:
    """Parse ``--lambdas 4+=7.9,4=6.5`` into {phase: λ}."""
    out: dict[str, float] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--lambdas must be a comma list of PHASE=VALUE (e.g. 4+=7.9,4=6.5), got {item!r}") from None
    return out


def _cmd_theory(args) -> int:
    from .analysis.theory_report import theory_report

    report = theory_report(c=args.c, r=args.r, phases=args.phases, n=parse_grid(args.n), out=args.out, lambdas=parse_lambdas(args.lambdas))
    print(report.table())
    print()
    if report.crossovers:
        for x in report.crossovers:
            print(f"crossover {x['from']} -> {x['to']}: n_crit = {x['n_crit']:.1f}")
    else:
        print(f"no change of the most probable phase for n in {args.n}")
    for name, path in report.files.items():
        print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = _Parser(prog="tms-bayes", description="Bayesian and dynamical phase transitions in singular models (TMS, two-layer ReLU).")
    p.add_argument("--version", action="version", version=f"tms-bayes {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("theory", help="exact TMS theory: critical-point catalogue, energy levels, theoretical occupancy")
    t.add_argument("--c", type=int, default=6, help="number of features c (default 6)")
    t.add_argument("--r", type=int, default=2, help="hidden dimension r (default 2)")
    t.add_argument("--phases", default="5,5+,6", help="comma list of phases for the occupancy curves (default 5,5+,6)")
    t.add_argument("--n", default="100:2000:50", help="sample sizes, start:stop:step inclusive or a comma list (default 100:2000:50)")
    t.add_argument("--lambdas", default=None, help="λ estimates for phases whose λ theory does not give, e.g. 4+=7.9,4=6.5")
    t.add_argument("--out", default="results/theory", help="output directory (default results/theory)")
    t.set_defaults(func=_cmd_theory)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:
        msg = " ".join(str(exc).split())
        print(f"tms-bayes: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tms-bayes: interrupted; finished results are on disk and a re-run resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
