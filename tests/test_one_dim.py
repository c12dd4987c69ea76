"""One-dimensional K(w) examples (SPEC 5): local free energies by quadrature."""

import math

import numpy as np
import pytest

from tms_bayes.theory import first_order_crossover, first_order_example, free_energy_curves, local_free_energy, merge_curves, merge_example, two_singularities


def slope_in_log_n(example, n1, n2):
    F = free_energy_curves(example, [n1, n2])
    return (F.sel(n=n2) - F.sel(n=n1)) / math.log(n2 / n1)


def test_free_energy_grows_like_lambda_log_n():
    """F_n ≈ λ log n + O(1) at a true minimum: regular λ = 1/2, quartic λ = 1/4 (within 1e-3 at n ~ 1e6)."""
    s = slope_in_log_n(two_singularities(), 1e6, 1e8)
    assert float(s.sel(phase="regular")) == pytest.approx(0.5, abs=1e-3)
    assert float(s.sel(phase="degenerate")) == pytest.approx(0.25, abs=1e-3)


def test_gaussian_window_matches_closed_form():
    """K = (w+1)², window [−2, 0], n = 50: ∫ = √(π/n)·erf(√n) / 4 exactly."""
    n = 50.0
    exact = -math.log(math.sqrt(math.pi / n) * math.erf(math.sqrt(n)) / 4.0)
    assert local_free_energy(lambda w: (w + 1.0) ** 2, (-2.0, 0.0), n) == pytest.approx(exact, rel=1e-10)


def test_first_order_transition_in_n():
    ex = first_order_example()
    n_c = first_order_crossover(ex)
    assert 1 < n_c < 1000
    F = free_energy_curves(ex, [n_c / 3, n_c * 3])
    assert F.isel(n=0).sel(phase="flat") < F.isel(n=0).sel(phase="true")  # complexity wins at small n
    assert F.isel(n=1).sel(phase="true") < F.isel(n=1).sel(phase="flat")  # accuracy wins at large n
    # slope of F_flat approaches K0 = 0.1 per sample: the non-true phase pays n·K0
    G = free_energy_curves(ex, [1e4, 2e4])
    assert float((G.isel(n=1) - G.isel(n=0)).sel(phase="flat")) / 1e4 == pytest.approx(0.1, rel=1e-3)


def test_second_order_merge_in_theta():
    curves = merge_curves(np.linspace(0.0, 1.0, 11), n=10)
    np.testing.assert_allclose(curves.sel(theta=1.0, phase="left"), curves.sel(theta=1.0, phase="right"), rtol=1e-12)
    gap = np.abs(curves.sel(phase="left") - curves.sel(phase="right")).values
    assert np.all(np.diff(gap) <= 1e-12)  # the two phases' free energies close continuously
    s = slope_in_log_n(merge_example(1.0), 1e6, 1e8)  # merged K = w⁶: λ = 1/6
    assert float(s.sel(phase="left")) == pytest.approx(1 / 6, abs=1e-3)


def test_bad_input():
    with pytest.raises(ValueError, match="window must satisfy"):
        local_free_energy(lambda w: w**2, (-3.0, 0.0), 10)
    with pytest.raises(ValueError, match="n must be a finite number > 0"):
        local_free_energy(lambda w: w**2, (-1.0, 1.0), 0)
    with pytest.raises(ValueError, match=r"theta must be in \[0, 1\]"):
        merge_example(1.5)
