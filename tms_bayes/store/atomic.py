"""Atomic writes: a result file is either the old complete file or the new complete file, never a
half-written one.  Everything tms-bayes saves goes through here (write to a temporary file in the
same directory, flush to disk, then ``os.replace``, which is atomic on POSIX and Windows)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "write_text", "write_netcdf", "write_figure", "check_manifest"]

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result onto ``path`` atomically; clean up on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def write_text(path, text: str) -> Path:
    def _w(tmp):
        Path(tmp).write_text(text, encoding="utf-8")

    return atomic_write(path, _w)


def write_netcdf(path, data) -> Path:
    """Write an xarray Dataset/DataArray or ArviZ InferenceData atomically (h5netcdf engine)."""

    def _w(tmp):
        if hasattr(data, "to_netcdf") and type(data).__name__ == "InferenceData":
            data.to_netcdf(tmp, engine="h5netcdf")
        else:
            data.to_netcdf(tmp, engine="h5netcdf", invalid_netcdf=False)

    return atomic_write(path, _w)


def write_figure(path, fig, *, dpi: int = 130) -> Path:
    fmt = Path(path).suffix.lstrip(".") or "png"
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight"))


def check_manifest(path, settings: dict, what: str) -> dict:
    """Read the manifest at ``path`` and refuse it unless its ``settings`` equal ``settings``.

    Returns the manifest.  A re-run with the same settings resumes; anything else raises a
    ``ValueError`` listing every differing setting (``what``: "a sweep", "a dynamics run", ...)."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a readable tms-bayes manifest ({exc}); choose another --out") from None
    old = manifest.get("settings", {})
    diffs = [f"{k}: {old.get(k)!r} there, {settings.get(k)!r} now" for k in sorted(set(old) | set(settings)) if old.get(k) != settings.get(k)]
    if diffs:
        raise ValueError(f"{path.parent} holds {what} with different settings ({'; '.join(diffs)}); use a new --out or the same settings to resume")
    return manifest


def read_manifest(out, kind: str | None, what: str) -> dict:
    """The manifest of the run directory ``out``, refused unless its ``kind`` is ``kind``
    (None: a posterior sweep over n, whose manifests carry no kind).  ``what`` names the expected
    directory in the error, e.g. "an SMC directory (tms-bayes smc)"."""
    path = Path(out) / "manifest.json"
    if not path.exists():
        raise ValueError(f"{out} is not {what}: it has no manifest.json")
    try:
        body = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a readable tms-bayes manifest ({exc})") from None
    if body.get("kind") != kind:
        raise ValueError(f"{out} is not {what}: it holds {body.get('kind') or 'a posterior sweep over n'}")
    return body
