"""Text forms of settings, as typed on the command line: grids of sample sizes, lists of values with π,
named numbers, tempering "a/log n".  Each parser returns the value or raises ``ValueError`` saying what
was typed and what is allowed."""

from __future__ import annotations

import math
import re

import numpy as np

__all__ = ["parse_grid", "parse_sizes", "parse_values", "parse_lambdas", "parse_names", "parse_beta"]

#: the most values a grid may list (a typo such as 1:1e13:1 is refused before any memory is taken)
MAX_GRID = 10_000


def _grid(text: str, name: str, number) -> np.ndarray:
    """``start:stop:step`` (inclusive of stop) or a comma list, each part read by ``number``."""
    text = str(text).strip()
    example = "(e.g. 100:2000:50) or a comma list (e.g. 100,200,400)"
    try:
        if ":" in text:
            parts = [number(p) for p in text.split(":")]
            if len(parts) != 3 or not parts[2] > 0:
                raise ValueError
            start, stop, step = parts
            if not all(math.isfinite(p) for p in parts):
                raise ValueError
            if (stop - start) / step + 1 > MAX_GRID:
                raise ValueError(f"{name} {text!r} lists more than {MAX_GRID} values; use a coarser step")
            values = np.arange(start, stop + step / 2, step)
        else:
            values = np.array([number(p) for p in text.split(",") if p.strip()])
            if values.size > MAX_GRID:
                raise ValueError(f"{name} lists more than {MAX_GRID} values")
    except ValueError as exc:
        if str(exc).startswith(name):
            raise
        raise ValueError(f"{name} must be start:stop:step with step > 0 {example}, got {text!r}") from None
    if values.size == 0 or np.any(~np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"{name} must give sample sizes n > 0, got {text!r}")
    return values


def parse_grid(text: str, name: str = "--n") -> np.ndarray:
    """Sample sizes (floats allowed: the theory's n is continuous) from ``start:stop:step`` (inclusive)
    or a comma list ``100,200,400``."""
    return _grid(text, name, float)


def _whole(text: str) -> int:
    t = text.strip()
    if not re.fullmatch(r"[+-]?[0-9]+", t):
        raise ValueError
    return int(t)


def parse_sizes(text: str, name: str = "--n") -> tuple[int, ...]:
    """Integer sample sizes from ``start:stop:step`` (inclusive; integers only, so ``100:200:50.5`` is
    refused rather than rounded) or a comma list."""
    try:
        return tuple(int(v) for v in _grid(text, name, _whole))
    except ValueError as exc:
        raise ValueError(
            str(exc)
            .replace("start:stop:step with step > 0", "integers start:stop:step with step > 0")
            .replace("a comma list (", "a comma list of integers (")
        ) from None


def number(text: str) -> float:
    """A float, or a multiple of π such as ``pi/2``, ``2pi/3``, ``0.5*pi``."""
    t = text.strip().lower().replace("π", "pi").replace(" ", "")
    m = re.fullmatch(r"([0-9.]*)\*?pi(?:/([0-9.]+))?", t)
    if m:
        den = float(m.group(2)) if m.group(2) else 1.0
        if den == 0:
            raise ValueError(f"division by zero in {text!r}")
        return (float(m.group(1)) if m.group(1) else 1.0) * math.pi / den
    return float(t)


def parse_values(text: str | None, name: str = "--values") -> tuple[float, ...] | None:
    """Truth values from ``start:stop:step`` (inclusive) or a comma list (``pi/2`` allowed); None
    stays None."""
    if text is None:
        return None
    try:
        if ":" in text:
            start, stop, step = (number(x) for x in text.split(":"))
            if not step > 0 or not math.isfinite(start + stop + step) or (stop - start) / step + 1 > MAX_GRID:
                raise ValueError
            return tuple(float(v) for v in np.round(np.arange(start, stop + step / 2, step), 10))
        values = tuple(number(x) for x in text.split(",") if x.strip())
        if not values or not all(math.isfinite(v) for v in values):
            raise ValueError
        return values
    except ValueError:
        raise ValueError(
            f"{name} must be start:stop:step or a comma list of numbers (pi allowed, e.g. 1.1,1.26,pi/2), "
            f"got {text!r}"
        ) from None


def parse_lambdas(text: str | None, name: str = "--lambdas") -> dict[str, float]:
    """``4+=7.9,4=6.5`` into {phase: λ}."""
    out: dict[str, float] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[key.strip()] = float(value)
        except ValueError:
            raise ValueError(
                f"{name} must be a comma list of PHASE=VALUE (e.g. 4+=7.9,4=6.5), got {item!r}"
            ) from None
        if not math.isfinite(out[key.strip()]) or out[key.strip()] <= 0:
            raise ValueError(f"{name}: λ must be a finite number > 0, got {item!r}")
    return out


def parse_names(text: str) -> tuple[str, ...]:
    """A comma list of names (phases): ``5,5+,6`` → ("5", "5+", "6")."""
    return tuple(p.strip() for p in str(text).split(",") if p.strip())


def parse_beta(text: str) -> float | str:
    """A tempering β: a positive number, or ``a/log n`` (spaces optional, ``1/log-n`` accepted)."""
    try:
        value = float(text)
    except ValueError:
        a = log_beta_factor(text.replace("log-n", "log n"))
        return f"{a:g}/log n"
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"beta must be a finite number > 0 or 'a/log n', got {text!r}")
    return value


def log_beta_factor(text: str) -> float:
    """The factor a of a tempering written "a/log n" ("1/log n", "1.5/log n"; WBIC's β = 1/log n)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)?\s*/\s*log\s*\(?\s*n\s*\)?\s*", str(text))
    if not m:
        raise ValueError(
            f"beta must be a positive number or 'a/log n' (e.g. '1/log n' for WBIC), got {text!r}"
        )
    a = float(m.group(1) or 1.0)
    if not a > 0:
        raise ValueError(f"beta 'a/log n' needs a > 0, got {text!r}")
    return a
