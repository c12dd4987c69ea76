"""The ``tms-bayes`` command line: outputs, and one-line errors with exit status 2."""

import os
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from tms_bayes.cli import main, parse_grid


def test_theory_writes_table_files_and_plots(tmp_path, capsys):
    assert (
        main(["theory", "--c", "6", "--phases", "5,5+,6", "--n", "100:1200:100", "--out", str(tmp_path)]) == 0
    )
    out = capsys.readouterr().out
    assert "change of the most probable phase (paper convention): 5 -> 6 at n = 601.0" in out
    assert "unknown" in out and "0.06874" in out
    for name in ["catalogue.csv", "catalogue.nc", "occupancy.nc", "energy_levels.png", "occupancy.png"]:
        assert (tmp_path / name).stat().st_size > 0
    occ = xr.load_dataset(tmp_path / "occupancy.nc", engine="h5netcdf")
    np.testing.assert_array_equal(occ.n.values, np.arange(100, 1201, 100))
    assert "5->6" in occ.occupancy.attrs["crossovers"]
    cat = xr.load_dataset(tmp_path / "catalogue.nc", engine="h5netcdf")
    assert cat.sizes["phase"] == 18 and cat.attrs["c"] == 6
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary files left behind


def test_lambda_estimates_on_the_command_line(tmp_path, capsys):
    assert main(["theory", "--phases", "4+,5,6", "--lambdas", "4+=6", "--out", str(tmp_path)]) == 0
    assert "(paper convention): 4+ -> 5" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,match",
    [
        (["theory", "--c", "0"], "c must be"),
        (["theory", "--r", "0"], "r must be"),
        (["theory", "--phases", "5,9"], "unknown phase '9'"),
        (["theory", "--phases", "4+,5"], "unknown in theory"),
        (["theory", "--n", "0:100:10"], "sample sizes n > 0"),
        (["theory", "--n", "abc"], "--n must be"),
        (["theory", "--lambdas", "4+"], "--lambdas must be"),
        (["theory", "--c", "x"], "invalid int value"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_prints_one_line_and_exits_2(argv, match, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        code = main([*argv, "--out", str(tmp_path)] if argv[0] == "theory" else argv)
        raise SystemExit(code)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert match in err
    assert err.count("\n") == 1 and err.startswith("tms-bayes: error:")


def test_console_script_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "tms_bayes.cli", "theory", "--phases", "5,banana", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_parse_grid_is_inclusive():
    np.testing.assert_array_equal(parse_grid("100:300:100"), [100, 200, 300])
    np.testing.assert_array_equal(parse_grid("5,50"), [5, 50])


def test_help_shows_each_commands_own_defaults(capsys):
    """wbic starts from its own sweep defaults (n = 100…1600, 2 seeds), and --help says so."""
    with pytest.raises(SystemExit):
        main(["wbic", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default 100,200,400,800,1600)" in text and "(default 2)" in text


def test_a_swallowed_signal_ends_in_130_and_does_not_outlive_the_command(tmp_path, monkeypatch):
    """A SIGINT whose KeyboardInterrupt a library swallowed (recorded, not raised) still ends the
    command with 130; the next call in the same process (a notebook) starts clean."""
    import dataclasses
    import signal

    import tms_bayes.experiments as experiments
    from tms_bayes import _interrupt

    def swallowed(settings, out, **kwargs):
        _interrupt._requested = signal.SIGINT  # what the handler records before its raise is lost
        return 0

    real = experiments.commands
    monkeypatch.setattr(
        experiments,
        "commands",
        lambda: [dataclasses.replace(c, main=swallowed) if c.name == "theory" else c for c in real()],
    )
    assert main(["theory", "--out", str(tmp_path)]) == 130
    _interrupt.check()  # cleared by main: does not raise


@pytest.mark.parametrize(
    "signum, error, code",
    [("SIGINT", "wrapped", 130), ("SIGTERM", "wrapped", 143), ("SIGTERM", "recorded", 143)],
)
def test_a_signal_turned_into_another_error_is_an_interrupt_not_an_internal_error(
    tmp_path, monkeypatch, capsys, signum, error, code
):
    """A signal that a library turned into an error of its own — ``dataclasses`` re-raises an
    interrupt during class creation as ``RuntimeError`` (seen in CI's kill loop, during start-up), or a
    library caught the raise and failed its own way — exits 130 / 143 with the one-line message, not 1
    with a traceback and a request to report an internal error."""
    import signal

    import tms_bayes.experiments as experiments
    from tms_bayes import _interrupt

    sig = getattr(signal, signum)

    def failing():
        if error == "recorded":
            _interrupt._requested = sig
            raise ValueError("a library's own error after it caught the interrupt")
        try:
            _interrupt.handler(sig, None)
        except BaseException as exc:
            raise RuntimeError("Error calling __set_name__ on 'Field' instance") from exc

    monkeypatch.setattr(experiments, "commands", failing)
    assert main(["theory", "--out", str(tmp_path)]) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err
    assert err.strip() == f"tms-bayes: {'interrupted' if sig == signal.SIGINT else 'terminated'}; " + (
        "finished results are on disk and a re-run resumes"
    )
    _interrupt.check()  # cleared by main
