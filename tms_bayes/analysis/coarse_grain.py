"""Unsupervised coarse-graining of posterior samples into phases: t-SNE, then HDBSCAN.

For when the phases are not known in advance (ReLU models, new models), and as a check of the exact
classifier on TMS: it never sees the exact labels.

1. Standardise the symmetry-invariant features (:mod:`tms_bayes.analysis.phases`).
2. Embed them in 2-D with t-SNE (scikit-learn; PCA initialisation, fixed ``random_state``).  t-SNE
   keeps neighbourhoods, which is what a phase is (a neighbourhood of a critical point).
3. Cluster the embedding with HDBSCAN.  Chosen because the number of phases is unknown (HDBSCAN finds
   it), phases have very different sizes and spreads (a 6-gon basin is tight at large n, a 4-gon family
   diffuse), and it labels points between clusters as noise (−1) instead of forcing them into a
   cluster — the analogue of the classifier's "unclassified".  A Gaussian mixture with BIC would need
   Gaussian-shaped clusters, which t-SNE embeddings are not; agglomerative clustering needs k.

Agreement with the exact labels is reported as the adjusted Rand index (1 = identical partitions,
≈ 0 = chance).  t-SNE is O(m log m) per iteration: at most ``max_samples`` samples are embedded
(a fixed-seed subsample, returned as ``sample_index_``).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.cluster import HDBSCAN
from sklearn.manifold import TSNE
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import StandardScaler

from .. import _validate

__all__ = ["CoarseGrainer", "agreement"]


class CoarseGrainer(BaseEstimator):
    """t-SNE + HDBSCAN coarse-graining (module docstring).

    After ``fit(features)``: ``sample_index_`` (rows used), ``embedding_`` (m, 2), ``labels_`` (m,),
    −1 for noise, and ``n_clusters_``.
    """

    def __init__(
        self,
        perplexity: float = 30.0,
        min_cluster_size: int | None = None,
        max_samples: int = 3000,
        random_state: int = 0,
    ):
        self.perplexity = perplexity
        self.min_cluster_size = min_cluster_size
        self.max_samples = max_samples
        self.random_state = random_state

    def fit(self, features, y=None):
        X = _validate.finite_array("features", features, ndim_min=2)
        if X.ndim != 2 or X.shape[0] < 10:
            raise ValueError(f"features must be a 2-D array with at least 10 samples, got shape {X.shape}")
        max_samples = _validate.integer("max_samples", self.max_samples, minimum=10)
        rng = np.random.default_rng(self.random_state)
        idx = (
            np.sort(rng.choice(X.shape[0], size=max_samples, replace=False))
            if X.shape[0] > max_samples
            else np.arange(X.shape[0])
        )
        Z = StandardScaler().fit_transform(X[idx])
        Z = Z[:, np.isfinite(Z).all(axis=0)]
        perplexity = min(float(self.perplexity), (len(idx) - 1) / 3.0)
        self.embedding_ = TSNE(
            n_components=2, perplexity=perplexity, init="pca", random_state=self.random_state
        ).fit_transform(Z)
        mcs = self.min_cluster_size or max(10, len(idx) // 100)
        self.labels_ = HDBSCAN(
            min_cluster_size=_validate.integer("min_cluster_size", mcs, minimum=2), copy=True
        ).fit_predict(self.embedding_)
        self.sample_index_ = idx
        self.n_clusters_ = int(len(set(self.labels_)) - (1 if -1 in self.labels_ else 0))
        return self

    def fit_predict(self, features, y=None):
        return self.fit(features).labels_


def agreement(exact_labels, clusters) -> float:
    """Adjusted Rand index between exact phase labels and cluster labels (same samples)."""
    exact_labels = np.asarray(exact_labels)
    clusters = np.asarray(clusters)
    if exact_labels.shape != clusters.shape:
        raise ValueError(
            f"labels and clusters must have the same shape, got {exact_labels.shape} and {clusters.shape}"
        )
    return float(adjusted_rand_score(exact_labels, clusters))
