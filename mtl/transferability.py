"""Transferability scores: how well frozen features of a checkpoint suit the user's labels, without fine-tuning.

Three scores on features of a sample (train features fit, validation features score):

- ``linear_probe``: validation accuracy of a logistic regression on standardised features (scikit-learn);
- ``knn``: validation accuracy of a k-nearest-neighbour vote on L2-normalised features (cosine);
- ``logme``: LogME (You et al., "LogME: Practical Assessment of Pre-trained Models for Transfer Learning",
  ICML 2021): the log evidence per example of a Bayesian linear model from the features to each one-hot label
  column, its prior and noise precisions set by evidence maximisation (MacKay's fixed point), averaged over
  classes. Computed on train plus validation features; higher is better; no held-out split needed.

Example::

    scores = transferability_scores(train_x, train_y, val_x, val_y)   # {"linear_probe": 0.91, "knn": ..., "logme": ...}
"""

from __future__ import annotations

import numpy as np

SCORES = ("linear_probe", "knn", "logme")


def logme(features: np.ndarray, labels: np.ndarray, max_iterations: int = 100, tolerance: float = 1e-3) -> float:
    """LogME evidence per example, averaged over the classes of ``labels`` (integers), for ``features`` (n x d).

    For each class column y (one-hot), the model y = F w + noise with w ~ N(0, I/alpha) and noise precision
    beta; alpha and beta maximise the evidence (fixed-point updates alpha = gamma / |m|^2,
    beta = (n - gamma) / |F m - y|^2 on the singular values of F), then the log evidence is returned / n.
    """
    f = np.asarray(features, dtype=np.float64)
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    labels = np.asarray(labels)
    return float(np.mean([class_evidence(u, s ** 2, f.shape[1], (labels == cls).astype(np.float64),
                                         max_iterations, tolerance)[0] / len(labels)
                          for cls in np.unique(labels)]))


def class_evidence(u: np.ndarray, sigma: np.ndarray, d: int, y: np.ndarray, max_iterations: int = 100,
                   tolerance: float = 1e-3) -> tuple[float, float, float]:
    """``(log evidence, alpha, beta)`` maximised for one target column ``y``, from the thin SVD of the features
    (``u``, ``sigma`` = squared singular values; the other ``d - len(sigma)`` eigenvalues of F^T F are 0)."""
    n = len(y)
    x2 = (u.T @ y) ** 2
    outside = max(float(y @ y - x2.sum()), 0.0)  # the part of y outside the span of the features

    def fit(t: float) -> tuple[float, float, float]:  # gamma, |m|^2 and |F m - y|^2 at alpha / beta = t
        return (float((sigma / (sigma + t)).sum()), float((sigma * x2 / (sigma + t) ** 2).sum()),
                float((x2 * (t / (sigma + t)) ** 2).sum()) + outside)

    alpha, beta = 1.0, 1.0
    for _ in range(max_iterations):
        t = alpha / beta
        gamma, m2, res2 = fit(t)
        alpha, beta = gamma / (m2 + 1e-10), (n - gamma) / (res2 + 1e-10)
        if abs(alpha / beta - t) / t < tolerance:
            break
    _, m2, res2 = fit(alpha / beta)
    log_det = float(np.log(alpha + beta * sigma).sum()) + (d - len(sigma)) * np.log(alpha)
    evidence = (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - n / 2 * np.log(2 * np.pi)
                - beta / 2 * res2 - alpha / 2 * m2 - log_det / 2)
    return float(evidence), alpha, beta


def linear_probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
                          seed: int = 0) -> float:
    """Validation accuracy of a logistic regression trained on standardised train features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5, random_state=seed))
    return float(probe.fit(train_x, train_y).score(val_x, val_y))


def knn_accuracy(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
                 k: int = 10) -> float:
    """Validation accuracy of a distance-weighted k-NN vote (cosine similarity) among the train features."""
    from sklearn.neighbors import KNeighborsClassifier

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    knn = KNeighborsClassifier(n_neighbors=min(k, len(train_y)), weights="distance")
    return float(knn.fit(unit(train_x), train_y).score(unit(val_x), val_y))


def transferability_scores(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray,
                           val_y: np.ndarray) -> dict[str, float]:
    """All of :data:`SCORES` for one checkpoint's features (higher is better for each)."""
    return {"linear_probe": linear_probe_accuracy(train_x, train_y, val_x, val_y),
            "knn": knn_accuracy(train_x, train_y, val_x, val_y),
            "logme": logme(np.concatenate([train_x, val_x]), np.concatenate([train_y, val_y]))}
