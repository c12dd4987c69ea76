"""Experiments: one module per workflow, each running the inference layer and analysing its output
with the analysis layer (imports point from here to both, never back).

Every module has the same verbs — a frozen ``Settings`` dataclass validated on construction, ``run``
(sample into a run directory), ``analyse`` (labelled xarray), ``report`` (files) — and one ``main``:
what the command line does, made of those verbs and callable from a notebook too.  Its
:data:`COMMAND` says how the CLI shows it; :func:`commands` lists them all (``tms_bayes.cli`` builds
its subcommands from them and holds no logic of its own).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Command", "commands", "MODULES"]

#: the workflow modules behind the ``tms-bayes`` subcommands, in the order ``--help`` lists them
MODULES = (
    "main_job",
    "theory",
    "posterior_sweep",
    "occupancy",
    "smc",
    "llc_catalogue",
    "dynamics",
    "relu",
    "compare",
    "wbic",
    "criteria",
    "merge",
)


@dataclass(frozen=True)
class Command:
    """How one workflow appears on the command line.

    ``settings``: its default settings (options are generated from their fields);
    ``main(settings, out, progress=...) -> int``: the whole command;
    ``out``: the default output directory, a string or a function of the settings (None: no --out default);
    ``writes``: the run-directory kinds ``out`` may already hold (None: a directory without a manifest),
    checked before any work so that one command never writes into another's directory."""

    name: str
    help: str
    settings: Callable[[], object]
    main: Callable[..., int]
    out: str | Callable[[object], str | None] | None
    writes: tuple[str | None, ...] = (None,)

    def default_out(self, settings) -> str | None:
        return self.out(settings) if callable(self.out) else self.out


def commands() -> list[Command]:
    """Every command, importing each workflow module."""
    return [importlib.import_module(f"{__name__}.{module}").COMMAND for module in MODULES]
