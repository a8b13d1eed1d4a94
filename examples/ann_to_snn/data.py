"""The digits data used by the ANN-to-SNN example: scikit-learn's bundled load_digits (no download).

Pixels are scaled to [0, 1]; the split is fixed (seeded, stratified) so the ANN, the calibration
set and the test set never overlap.
"""

from __future__ import annotations

import numpy as np


def split(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return x_train (N, 1, 8, 8) float32 in [0, 1], x_test, y_train, y_test (25% test, stratified)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    return tuple(train_test_split(x, d.target.astype(np.int64), test_size=0.25, random_state=seed,
                                  stratify=d.target))  # type: ignore[return-value]


def calibration(x_train: np.ndarray, y_train: np.ndarray, n: int = 256, seed: int = 1) -> dict[str, np.ndarray]:
    """A calibration set drawn from the TRAINING split only: {"x": (n, 1, 8, 8), "labels": (n,)}."""
    idx = np.random.default_rng(seed).permutation(len(x_train))[:n]
    return {"x": x_train[idx], "labels": y_train[idx]}
