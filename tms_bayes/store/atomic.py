"""Atomic writes: a result file is either the old complete file or the new complete file, never a
half-written one.  Everything tms-bayes saves goes through here (write to a temporary file in the
same directory, flush to disk, then ``os.replace``, which is atomic on POSIX and Windows)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "write_text", "write_netcdf", "write_figure"]

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
