"""The ``tms-bayes`` command line.  Thin: every subcommand is an experiment's ``COMMAND``
(:mod:`tms_bayes.experiments`), its options generated from the experiment's settings dataclass
(:mod:`tms_bayes._options`); this module parses, checks the output directory, and calls ``main``.

Exit status: 0 done; 2 an expected failure — bad input, a refused or unwritable output, a corrupt
file, a full disk — as one line on stderr (``tms-bayes: error: …``), nothing written; 130 / 143
interrupted by SIGINT / SIGTERM (finished work is on disk, temporary files removed, a re-run resumes);
1 an unexpected error, shown as a traceback with a request to report it.
"""

from __future__ import annotations

import argparse
import signal
import sys

from ._parse import parse_grid, parse_lambdas, parse_values

__all__ = ["main", "build_parser", "parse_grid", "parse_lambdas", "parse_values"]


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit status 2."""

    def error(self, message):  # noqa: D401  (argparse API)
        self.exit(2, f"tms-bayes: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """``tms-bayes`` and one subcommand per experiment command."""
    from . import __version__
    from ._options import add_options
    from .experiments import commands

    p = _Parser(
        prog="tms-bayes",
        description="Bayesian and dynamical phase transitions in singular models (TMS, two-layer ReLU).",
    )
    p.add_argument("--version", action="version", version=f"tms-bayes {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for cmd in commands():
        sp = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        defaults = cmd.settings()
        add_options(sp, defaults)
        sp.add_argument("--out", default=None, help=f"output directory (default {_shown_out(cmd)})")
        sp.add_argument("--no-progress", action="store_true", help="no progress bars")
        sp.add_argument("--force", action="store_true", help="lift the size ceilings (for a real large run)")
        sp.set_defaults(command_spec=cmd, defaults=defaults)
    return p


def _shown_out(cmd) -> str:
    if cmd.out is None:
        return "none: print only"
    return cmd.out if isinstance(cmd.out, str) else "per settings, under runs/"


def _run(args) -> int:
    from ._options import from_args
    from ._validate import no_ceilings
    from .store.rundir import check_output

    cmd = args.command_spec
    with no_ceilings() if args.force else _nothing():
        settings = from_args(args.defaults, args)  # every setting validated before anything is written
        out = args.out or cmd.default_out(settings)
        if out is not None:
            check_output(out, cmd.writes)
        return cmd.main(settings, out, progress=not args.no_progress)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def main(argv: list[str] | None = None, *, exiting: bool = False) -> int:
    """Parse ``argv`` and run the command; returns the exit code (0, 2 bad input or a refused path,
    130/143 interrupted, 1 internal error).  ``exiting`` (the console script): once the command is
    done, SIGINT and SIGTERM are ignored instead of restored, so that a signal during the interpreter's
    shutdown — JAX takes a second or more to tear down — cannot turn a finished run into a kill."""
    import warnings

    from . import _interrupt

    _interrupt.clear()  # first: a signal during start-up is handled too
    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, _interrupt.handler)
        from ._devices import configure

        # one XLA device per core before any JAX backend starts: a sweep samples a job per core at once
        configure(strict=False)
        warnings.filterwarnings("ignore", message=".*BLAS.*")
        warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")
        args = build_parser().parse_args(argv)
        code = _run(args)
        _interrupt.check()  # a signal whose exception a library swallowed still ends in 130 / 143
        return code
    except (KeyboardInterrupt, _interrupt.Terminated) as exc:
        return _interrupted(exc)
    except Exception as exc:
        signalled = _interrupt.behind(exc)
        if signalled is not None:  # a library turned the signal's raise into an error of its own
            return _interrupted(signalled)
        if isinstance(exc, (ValueError, OSError)):  # bad input, a refused path, a full disk, a corrupt file
            detail = (
                str(exc)
                if isinstance(exc, ValueError)
                else f"{exc.strerror or exc} ({exc.filename or 'no path'})"
            )
            print(f"tms-bayes: error: {' '.join(detail.split())}", file=sys.stderr)
            return 2
        import traceback

        traceback.print_exc()
        from . import __version__

        print(
            f"tms-bayes {__version__}: internal error (not a problem with your input); please report it "
            "to the tms-bayes developers with the command and the traceback above",
            file=sys.stderr,
        )
        return 1
    finally:
        for sig, old_handler in previous.items():
            signal.signal(sig, signal.SIG_IGN if exiting else old_handler)
        _interrupt.clear()  # a later call (a notebook, a test) starts clean


def _interrupted(exc: BaseException) -> int:
    """One line on stderr and the exit status of an interrupt: 130 for SIGINT, 143 for SIGTERM."""
    word, code = ("interrupted", 130) if isinstance(exc, KeyboardInterrupt) else ("terminated", 143)
    print(f"tms-bayes: {word}; finished results are on disk and a re-run resumes", file=sys.stderr)
    return code


def entry() -> None:
    """The ``tms-bayes`` console script: :func:`main` on the command line's arguments, then exit."""
    sys.exit(main(exiting=True))


if __name__ == "__main__":  # pragma: no cover
    entry()
