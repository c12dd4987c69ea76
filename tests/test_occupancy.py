"""Empirical occupancy, crossovers and the report (issue: phases and occupancy curves)."""

import numpy as np
import pytest
import xarray as xr

from tms_bayes.analysis.occupancy import empirical_crossover, empirical_occupancy, sweep_labels, theory_crossover_interval
from tms_bayes.experiments.occupancy import occupancy_report
from tms_bayes.cli import main
from tms_bayes.inference.sweep import SweepSettings, load_sweep, run_sweep
from tms_bayes.theory import critical_points


def synthetic_labels(p6_by_n, seeds=2, chains=10, draws=20):
    """Chains that sit in one phase each: chain i of every seed is '6' if i < p6·chains, else '5'."""
    ns = np.array(sorted(p6_by_n))
    lab = np.empty((len(ns), seeds, chains, draws), dtype=object)
    for i, n in enumerate(ns):
        k = round(p6_by_n[n] * chains)
        lab[i, :, :k] = "6"
        lab[i, :, k:] = "5"
    loss = np.where(lab == "6", 0.05, 0.07)
    return xr.Dataset(
        {"label": (("n", "seed", "chain", "draw"), lab.astype(str)), "L_n": (("n", "seed", "chain", "draw"), loss)},
        coords={"n": ns, "seed": np.arange(seeds), "chain": np.arange(chains), "draw": np.arange(draws)},
    )


def test_empirical_occupancy_shares_intervals_and_crossover():
    labels = synthetic_labels({200: 0.1, 400: 0.3, 600: 0.6, 800: 0.9})
    occ = empirical_occupancy(labels, n_boot=400, seed=1)
    np.testing.assert_allclose(occ.share.sel(phase="6").values, [0.1, 0.3, 0.6, 0.9])
    np.testing.assert_allclose(occ.share.sum("phase").values, 1.0)
    assert np.all(occ.lower.values <= occ.share.values + 1e-12) and np.all(occ.share.values <= occ.upper.values + 1e-12)
    np.testing.assert_allclose(occ.chain_share.sel(phase="6").values, [0.1, 0.3, 0.6, 0.9])
    np.testing.assert_allclose(occ.mean_L_n.sel(phase="6").values, 0.05)
    assert "may not have converged" in occ.attrs["estimator"]
    cr = empirical_crossover(occ, "5", "6")
    # share(6) − share(5) = −0.4 at 400, +0.2 at 600: linear interpolation gives 400 + 200·(0.4/0.6)
    assert cr["n_crit"] == pytest.approx(400 + 200 * 0.4 / 0.6)
    assert cr["lower"] <= cr["n_crit"] <= cr["upper"] and cr["fraction_crossing"] > 0.9
    with pytest.raises(ValueError, match="phase '4' was not observed"):
        empirical_crossover(occ, "4", "6")


def test_theory_crossover_interval_contains_601():
    cr = theory_crossover_interval(critical_points(6), "5", "6")
    assert cr["n_crit"] == pytest.approx(601.0, abs=0.5)
    assert cr["lower"] < 601 < cr["upper"]
    assert 400 < cr["lower"] and cr["upper"] < 900


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    settings = SweepSettings(n=(300, 900), seeds=2, chains=2, tune=80, draws=40)
    return run_sweep(settings, out, progress=False, log=lambda *_: None)


def test_report_end_to_end(tiny_sweep, tmp_path):
    report = occupancy_report(tiny_sweep.out, tmp_path, max_tsne_samples=200, n_boot=100)
    for name in ["occupancy.nc", "occupancy.csv", "occupancy.png", "tsne.png", "gallery.png", "share_vs_loss.png", "report.md"]:
        assert (tmp_path / name).stat().st_size > 0
    occ = xr.load_dataset(tmp_path / "occupancy.nc", engine="h5netcdf")
    assert list(occ.n.values) == [300, 900] and "unclassified" in occ.phase.values
    assert -1 <= occ.attrs["adjusted_rand_index"] <= 1
    md = (tmp_path / "report.md").read_text()
    assert "chain-share estimator" in md and "adjusted Rand index" in md
    assert [c["kind"] for c in report.crossovers] == ["theory", "theory (Laplace)", "empirical"]
    assert "Laplace, every O(1) term" in report.text() and "Mixing between phases" in md
    assert "t-interval over 2 datasets" in occ.attrs["interval"]


def test_occupancy_cli_and_errors(tiny_sweep, tmp_path, capsys):
    assert main(["occupancy", str(tiny_sweep.out), "--out", str(tmp_path), "--tsne-samples", "200"]) == 0
    assert "theory    5 -> 6: n_crit = 601.0" in capsys.readouterr().out
    assert main(["occupancy", str(tmp_path / "nothing")]) == 2
    assert "not a sweep directory" in capsys.readouterr().err
    assert main(["occupancy", str(tiny_sweep.out), "--out", str(tmp_path), "--theory-phases", "5,9"]) == 2
    assert "unknown phase '9'" in capsys.readouterr().err


def test_occupancy_refuses_non_tms_and_empty_sweeps(tmp_path):
    relu = run_sweep(SweepSettings(model="relu-pt1", n=(100,), seeds=1, chains=1, tune=20, draws=10), tmp_path / "relu", progress=False, log=lambda *_: None)
    with pytest.raises(ValueError, match="needs a TMS sweep"):
        sweep_labels(relu)
    empty = tmp_path / "empty"
    from tms_bayes.inference.sweep import Sweep

    Sweep(SweepSettings(n=(100,), seeds=1, chains=1, tune=20, draws=10), empty)._write_manifest() if empty.mkdir() is None else None
    with pytest.raises(ValueError, match="no finished runs"):
        sweep_labels(load_sweep(empty))


def test_run_command_is_sweep_plus_report(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["run", "--estimator", "chains", "--n", "400,800", "--seeds", "1", "--chains", "2", "--tune", "60", "--draws", "30", "--out", str(out),
            "--no-progress", "--tsne-samples", "60"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "Empirical occupancy" in text and (out / "report.md").exists() and (out / "manifest.json").exists()
    assert main(["run", "--model", "relu-pt1", "--out", str(tmp_path / "x")]) == 2
