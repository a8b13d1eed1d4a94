"""Bundled data sets (scikit-learn, no download) split without leaks.

Every scaler is fitted on the training part only and then applied to the test
part, so no statistic of a test sample reaches the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import N3mlError

__all__ = ["Split", "MinMaxScaler", "load_split", "xor"]


@dataclass
class Split:
    """A train/test split. Features are float32 in [0, 1] (test values may leave [0, 1] slightly)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int

    @property
    def n_features(self) -> int:
        return int(np.prod(self.x_train.shape[1:]))


class MinMaxScaler:
    """x -> (x - lo) / (hi - lo), with lo, hi fitted on training data only.

    Args:
        per_feature: one (lo, hi) per feature (tabular data); False: one global
            pair (images, where the pixel scale is shared).
    """

    def __init__(self, per_feature: bool = True):
        self.per_feature = per_feature
        self.lo: np.ndarray | None = None
        self.span: np.ndarray | None = None

    def fit(self, x: np.ndarray) -> MinMaxScaler:
        axis = 0 if self.per_feature else None
        lo, hi = np.min(x, axis=axis), np.max(x, axis=axis)
        span = np.asarray(hi - lo, dtype=np.float64)
        self.lo = np.asarray(lo, dtype=np.float64)
        # a feature that is constant on the training set carries no information: map it to 0
        self.span = np.where(span > 0, span, np.inf)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        if self.lo is None:
            raise N3mlError("MinMaxScaler.transform called before fit")
        return ((x - self.lo) / self.span).astype(np.float32)


def _stratified_split(y: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = int(round(test_size * len(idx)))
        test.append(idx[:k])
        train.append(idx[k:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def load_split(name: str, *, test_size: float = 0.25, seed: int = 0, images: bool = False) -> Split:
    """Load a bundled scikit-learn data set and split it, stratified by class.

    Args:
        name: "iris" or "digits".
        test_size: fraction of each class held out for testing.
        seed: seed of the split.
        images: digits only: return (N, 1, 8, 8) images scaled by one global
            factor instead of (N, 64) vectors scaled per feature.
    Returns:
        A `Split` whose scaler was fitted on the training part only.
    """
    from sklearn import datasets  # scikit-learn is an optional (test/example) dependency

    loaders = {"iris": datasets.load_iris, "digits": datasets.load_digits}
    if name not in loaders:
        raise N3mlError(f"unknown data set {name!r}; bundled: {', '.join(loaders)}")
    if not 0.0 < test_size < 1.0:
        raise N3mlError(f"test_size must lie in (0, 1), found {test_size}")
    d = loaders[name]()
    x, y = d.data.astype(np.float64), d.target.astype(np.int64)
    tr, te = _stratified_split(y, test_size, seed)
    scaler = MinMaxScaler(per_feature=not images).fit(x[tr])
    xtr, xte = scaler.transform(x[tr]), scaler.transform(x[te])
    if images:
        if name != "digits":
            raise N3mlError(f"images=True needs an image data set, found {name!r}")
        xtr, xte = xtr.reshape(-1, 1, 8, 8), xte.reshape(-1, 1, 8, 8)
    return Split(xtr, y[tr], xte, y[te], int(y.max()) + 1)


def xor() -> tuple[np.ndarray, np.ndarray]:
    """The four XOR patterns (float32, shape (4, 2)) and their labels."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    return x, np.array([0, 1, 1, 0], dtype=np.int64)
