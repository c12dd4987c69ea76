"""Symmetry-invariant features, the exact k-gon classifier and the unsupervised coarse-grainer."""

import math

import numpy as np
import pytest

from tms_bayes.analysis.coarse_grain import CoarseGrainer, agreement
from tms_bayes.analysis.phases import UNCLASSIFIED, Thresholds, TMSPhaseClassifier, classify_tms, relu_features, tms_features
from tms_bayes.theory import catalogue_phase_names, kgon, pack, parse_phase


def random_orthogonal(rng, r=2):
    Q, _ = np.linalg.qr(rng.normal(size=(r, r)))
    return Q


def test_tms_features_are_invariant(rng):
    for r in (2, 3):
        W = rng.normal(size=(r, 6))
        b = rng.normal(size=6)
        base = tms_features(W, b)
        for _ in range(5):
            Q = random_orthogonal(rng, r)
            perm = rng.permutation(6)
            np.testing.assert_allclose(tms_features((Q @ W)[:, perm], b[perm]), base, rtol=1e-12, atol=1e-12)
    # batched input gives the per-sample features
    Ws, bs = rng.normal(size=(4, 3, 2, 6)), rng.normal(size=(4, 3, 6))
    np.testing.assert_allclose(tms_features(Ws, bs)[2, 1], tms_features(Ws[2, 1], bs[2, 1]))
    # and distinguishes genuinely different samples
    assert not np.allclose(tms_features(W[:2] * 1.1, b), tms_features(W[:2], b))


def test_relu_features_are_invariant_to_scaling_and_node_permutation(rng):
    w, b, q = rng.normal(size=(3, 2)), rng.normal(size=3), rng.normal(size=3)
    base = relu_features(w, b, q)
    alpha = rng.uniform(0.2, 5.0, size=3)
    perm = rng.permutation(3)
    np.testing.assert_allclose(relu_features((alpha[:, None] * w)[perm], (alpha * b)[perm], (q / alpha)[perm]), base, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("c", [5, 6])
def test_classifier_labels_every_catalogue_point_under_noise_rotation_permutation(c, rng):
    for name in catalogue_phase_names(c):
        k, s, p = parse_phase(name)
        pt = kgon(k, c, sigma=s, phi=p)
        for t in range(12):
            Q = random_orthogonal(rng)
            perm = rng.permutation(c)
            W = (Q @ pt.W)[:, perm] + rng.normal(0, 0.05, size=(2, c))
            b = pt.b[perm] + rng.normal(0, 0.02, size=c)
            assert classify_tms(W, b) == name, (name, t)


def test_classifier_says_unclassified_instead_of_guessing():
    pt = kgon(5, 6)
    W = pt.W.copy()
    W[:, 5] = [0.35, 0.0]  # a column between zero_norm and vertex_norm: ambiguous
    assert classify_tms(W, pt.b) == UNCLASSIFIED
    W = pt.W.copy()
    W[:, 5] = [0.6, 0.0]  # a large column inside the pentagon: not a polygon
    assert classify_tms(W, pt.b) == UNCLASSIFIED
    W = np.zeros((2, 6))
    W[:, :2] = [[1, 0], [0, 1]]  # two vertices: no polygon
    assert classify_tms(W, -np.ones(6)) == UNCLASSIFIED
    W = np.zeros((2, 6))
    W[0, :3] = [1.0, 2.0, -1.5]  # collinear tips
    assert classify_tms(W, -np.ones(6)) == UNCLASSIFIED


def test_thresholds_are_configurable_and_validated():
    pt = kgon(5, 6)
    W = pt.W.copy()
    W[:, 5] = [0.35, 0.0]
    assert classify_tms(W, pt.b, Thresholds(zero_norm=0.4)) == "5"
    with pytest.raises(ValueError, match="zero_norm must be <= vertex_norm"):
        Thresholds(vertex_norm=0.3, zero_norm=0.4)
    with pytest.raises(ValueError, match="r = 2"):
        classify_tms(np.zeros((3, 6)), np.zeros(6))


def test_sklearn_style_classifier():
    pts = [kgon(6, 6), kgon(5, 6, sigma=1), kgon(4, 6, sigma=2, phi=1)]
    X = np.stack([pack(p.W, p.b) for p in pts])
    clf = TMSPhaseClassifier(c=6).fit(X)
    assert list(clf.predict(X)) == ["6", "5+", "4++-"]
    with pytest.raises(ValueError, match="3c = 18 columns"):
        clf.predict(X[:, :10])


def test_coarse_grainer_recovers_separated_phases(rng):
    """Noisy copies of three catalogue points (random frames): t-SNE + HDBSCAN without labels
    must agree with the exact labels (ARI ≥ 0.9)."""
    W, b, truth = [], [], []
    for name in ["6", "5+", "4++"]:
        k, s, p = parse_phase(name)
        pt = kgon(k, 6, sigma=s, phi=p)
        for _ in range(150):
            Q = random_orthogonal(rng)
            perm = rng.permutation(6)
            W.append((Q @ pt.W)[:, perm] + rng.normal(0, 0.05, size=(2, 6)))
            b.append(pt.b[perm] + rng.normal(0, 0.02, size=6))
            truth.append(name)
    X = tms_features(np.array(W), np.array(b))
    cg = CoarseGrainer(random_state=0).fit(X)
    assert cg.n_clusters_ == 3
    assert agreement(np.array(truth)[cg.sample_index_], cg.labels_) >= 0.9
    with pytest.raises(ValueError, match="at least 10 samples"):
        CoarseGrainer().fit(X[:5])


def test_coarse_grainer_runs_on_relu_effective_weights(rng):
    """PT1-like samples: non-degenerate (two effective weights of norm 1) vs degenerate (one of norm 2,
    one near 0), each with random node scalings and order; clusters must match (ARI ≥ 0.9)."""
    th = 1.3
    w_true = np.array([[math.cos(th), math.sin(th)], [-math.cos(th), math.sin(th)]])
    samples, truth = [], []
    for phase in ("non-degenerate", "degenerate"):
        for _ in range(150):
            if phase == "non-degenerate":
                eff = w_true + rng.normal(0, 0.05, size=(2, 2))
                effb = np.full(2, -0.3) + rng.normal(0, 0.02, size=2)
            else:
                eff = np.array([[0.0, 2 * math.sin(th)], [0.0, 0.0]]) + rng.normal(0, 0.05, size=(2, 2))
                effb = np.array([-0.6, -0.1]) + rng.normal(0, 0.02, size=2)
            alpha = rng.uniform(0.3, 3.0, size=2)
            perm = rng.permutation(2)
            w, b, q = (eff / alpha[:, None])[perm], (effb / alpha)[perm], alpha[perm]
            samples.append(relu_features(w, b, q))
            truth.append(phase)
    cg = CoarseGrainer(random_state=1).fit(np.array(samples))
    assert agreement(np.array(truth)[cg.sample_index_], cg.labels_) >= 0.9
