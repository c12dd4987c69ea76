"""Settings dataclasses as command-line options: one declaration serves notebooks and the CLI.

A settings field is declared with :func:`setting` — its default, one line of documentation, and how the
command line spells it (flag name, choices, a parser for text such as ``100:1200:100``).
:func:`add_options` turns the fields of a default settings instance into ``argparse`` options (a field
that is itself a settings dataclass adds its own fields, flattened; the defaults shown are the
instance's, so a command can start from other defaults than the class's), and :func:`from_args` builds
the settings back from the parsed namespace.  Validation stays in each dataclass's ``__post_init__``:
a bad value raises ``ValueError`` naming the setting, before anything is written.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import MISSING, field, fields, is_dataclass, replace

__all__ = ["setting", "add_options", "from_args", "flag_of", "GAUGES", "MASS_MATRICES", "CHAIN_METHODS"]

#: choices shared by several settings classes and the modules behind them (kept here, import-light)
#: TMS parameterisation: "so2" samples W in the rotation gauge of ``models.tms.tms_model``, "none" W itself
GAUGES = ("so2", "none")
#: the NUTS inverse mass matrix that warm-up adapts: its diagonal, or all of it
MASS_MATRICES = ("diag", "dense")
#: how the sampling engine runs a job's chains (``inference.nuts``)
CHAIN_METHODS = ("sequential", "vectorized", "chees")


def setting(
    default=MISSING,
    doc: str = "",
    *,
    default_factory=MISSING,
    flag: str | None = None,
    choices=None,
    parse: Callable[[str], object] | None = None,
    show: str | None = None,
    positional: bool = False,
    nargs=None,
    cli: bool = True,
):
    """A dataclass field with its documentation and command-line spelling.

    ``flag``: the option name (default ``--field-name``; for a bool whose default is True, ``--no-…``);
    ``parse``: turns the command-line text into the value (its ``ValueError`` message is shown as is);
    ``show``: how the default reads in ``--help``; ``positional``/``nargs``: a positional argument;
    ``cli=False``: not on the command line."""
    meta = {
        "doc": doc,
        "flag": flag,
        "choices": choices,
        "parse": parse,
        "show": show,
        "positional": positional,
        "nargs": nargs,
        "cli": cli,
    }
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def flag_of(f) -> str:
    """The command-line flag of dataclass field ``f``."""
    meta = f.metadata
    if meta.get("flag"):
        return meta["flag"]
    return "--" + f.name.replace("_", "-")


def add_options(parser: argparse.ArgumentParser, defaults, *, prefix: str = "") -> None:
    """Add an option for every command-line field of the settings instance ``defaults`` (recursing into
    fields that are settings themselves); each option's dest is the field's dotted path."""
    for f in fields(defaults):
        meta = f.metadata
        if not meta.get("cli", True):
            continue
        value = getattr(defaults, f.name)
        dest = prefix + f.name
        if is_dataclass(value):
            add_options(parser, value, prefix=dest + ".")
            continue
        doc = meta.get("doc", "")
        if meta.get("positional"):
            parser.add_argument(
                dest, metavar=f.name.upper(), nargs=meta.get("nargs"), help=doc, choices=meta.get("choices")
            )
            continue
        # ``show`` describes the class default; a command that starts from other defaults shows its own
        shown = meta.get("show") if meta.get("show") and value == f.default else _show(value)
        if isinstance(value, bool):
            action = "store_false" if value else "store_true"
            flag = meta.get("flag") or ("--no-" if value else "--") + f.name.replace("_", "-")
            parser.add_argument(flag, dest=dest, action=action, default=value, help=doc)
            continue
        if f.default is None:  # a default derived from other settings: left to the dataclass to derive again
            value = None
        kind = str if meta.get("parse") else type(value) if isinstance(value, (int, float, str)) else str
        if kind is int:
            kind = _integer
        parser.add_argument(
            flag_of(f),
            dest=dest,
            type=kind,
            default=value,
            choices=meta.get("choices"),
            metavar=None if meta.get("choices") else f.name.upper(),
            help=f"{doc} (default {shown})" if doc else f"(default {shown})",
        )


def from_args(defaults, args: argparse.Namespace, *, prefix: str = ""):
    """The settings parsed into ``args`` by :func:`add_options` with ``defaults``; parsing and validation
    errors are ``ValueError`` naming the option."""
    changes = {}
    for f in fields(defaults):
        meta = f.metadata
        if not meta.get("cli", True):
            continue
        value = getattr(defaults, f.name)
        dest = prefix + f.name
        if is_dataclass(value):
            changes[f.name] = from_args(value, args, prefix=dest + ".")
            continue
        given = getattr(args, dest)
        parse = meta.get("parse")
        if (
            parse is not None
            and isinstance(given, (str, list))
            and not (isinstance(value, str) and given == value)
        ):
            try:
                given = parse(given)
            except ValueError as exc:
                name = f.name if meta.get("positional") else flag_of(f)
                raise ValueError(str(exc) if name in str(exc) else f"{name}: {exc}") from None
        if isinstance(given, float) and not math.isfinite(given):
            raise ValueError(f"{flag_of(f)} must be a finite number, got {given!r}")
        changes[f.name] = given
    return replace(defaults, **changes)


def _integer(text: str) -> int:
    """An int option: digits only (``12.5`` and ``1e3`` are refused rather than rounded)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value {text!r} (an integer such as 300)") from None


def _show(value) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value) if value else "none"
    return str(value)
