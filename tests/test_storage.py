"""Atomic writes: a failed write leaves the previous complete file and no temporary file."""

import pytest

from tms_bayes.store.atomic import atomic_write, write_text


def test_failed_write_keeps_old_file(tmp_path):
    target = tmp_path / "result.txt"
    write_text(target, "complete old result")

    def broken(tmp):
        with open(tmp, "w") as fh:
            fh.write("half a resu")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_text() == "complete old result"
    assert [p.name for p in tmp_path.iterdir()] == ["result.txt"]


def test_creates_parent_directories(tmp_path):
    path = write_text(tmp_path / "a" / "b" / "c.txt", "x")
    assert path.read_text() == "x"
