"""Calibration at scale: streamed percentiles (exact, bounded memory), batched runs of the ANN view on
any engine, and normalize's scales independent of how the calibration set is cut into batches."""

from __future__ import annotations

import numpy as np
import pytest

from n3ml.commands._engines import pass_context
from n3ml.ir import prims as P
from n3ml.loader import load_model
from n3ml.passes import PassManager
from n3ml.passes.calibration import TailPercentile, activations, ann_view, auto_batch
from n3ml.passes.normalize import Normalize, _pct

CAL = dict(np.load("examples/ann_to_snn/calib.npz"))
RNG = np.random.default_rng(7)


def _feed_in_batches(tail: TailPercentile, a: np.ndarray, group: int = 0) -> None:
    lo = 0
    while lo < a.size:
        hi = lo + int(RNG.integers(1, 400))
        tail.feed(a[lo:hi], group)
        lo = hi


@pytest.mark.parametrize("q", [99.9, 99.0, 95.0, 100.0, 12.5])
def test_tail_percentile_is_numpys_percentile_of_the_positive_values(q):
    # ReLU-like data: many exact zeros, a heavy tail, ties
    a = np.maximum(RNG.standard_t(3, size=5003), 0.0)
    a[::17] = 2.5
    tail = TailPercentile(q, a.size)
    _feed_in_batches(tail, a)
    assert tail.value() == _pct(a, q)  # bit for bit: the same order statistics, numpy's interpolation
    assert all(t.size <= tail.k for t in tail.top)
    assert tail.k <= np.ceil((1 - q / 100) * a.size) + 2  # 99.9: 0.1 % of the values are kept


def test_tail_percentile_per_channel_and_edge_cases():
    a = np.maximum(RNG.normal(size=(64, 3, 5)), 0.0)  # (B, C, H*W)
    tail = TailPercentile(99.0, 64 * 5, groups=3)
    for lo in range(0, 64, 10):
        for c in range(3):
            tail.feed(a[lo:lo + 10, c], c)
    for c in range(3):
        assert tail.value(c) == _pct(a[:, c], 99.0)
    silent = TailPercentile(99.9, 10)
    silent.feed(np.zeros(10))
    assert silent.value() == 1.0  # a silent layer keeps its scale
    one = TailPercentile(99.9, 10)
    one.feed(np.array([0.0, 0.0, 3.0]))
    assert one.value() == 3.0


def test_dust_below_the_maximum_is_not_a_positive_value():
    a = np.concatenate([np.full(100, 1e-14), RNG.random(100)])
    tail = TailPercentile(50.0, a.size)
    _feed_in_batches(tail, a)
    assert tail.value() == _pct(a, 50.0) == np.percentile(a[100:], 50.0)


def _snn():
    g = load_model("examples/ann_to_snn/residual.onnx")
    return PassManager.from_string("fold-batchnorm,ann-to-snn").run(g)


def test_scales_do_not_depend_on_the_batching_and_engines_agree():
    snn = _snn()
    x = {"x": CAL["x"][:40].astype(np.float64)}
    norm = Normalize(percentile=99.0)
    whole = norm.scales(snn, x, {"calibration_batch": 40, "progress": False})
    cut = norm.scales(snn, x, {"calibration_batch": 7, "progress": False})
    assert whole.keys() == cut.keys()
    for n in whole:
        assert float(whole[n]) == float(cut[n]), n
    # the batched definition is the all-at-once one (reference interpreter, float64)
    view = ann_view(snn)
    acts = activations(view, x, list(whole))
    for n in whole:
        assert float(whole[n]) == _pct(acts[n], 99.0), n
    # the torch executor's held runs (compiled once; float64 reproduces the interpreter's bits)
    ctx = {**pass_context(), "progress": False}
    if ctx["engine"] != "torch":
        pytest.skip("torch engine not available")
    f64 = Normalize(percentile=99.0, dtype="float64").scales(snn, x, ctx)
    f32 = Normalize(percentile=99.0).scales(snn, x, ctx)
    for n in whole:
        assert float(f64[n]) == pytest.approx(float(whole[n]), rel=1e-12), n
        assert float(f32[n]) == pytest.approx(float(whole[n]), rel=1e-5), n


def test_channelwise_scales_streamed():
    snn = _snn()
    x = {"x": CAL["x"][:24].astype(np.float64)}
    lam = Normalize(percentile=99.5, channelwise=True).scales(snn, x, {"calibration_batch": 5, "progress": False})
    acts = activations(ann_view(snn), x, list(lam))
    conv = [n for n in lam if np.asarray(lam[n]).ndim == 3]
    assert conv
    for n in conv:
        for c in range(acts[n].shape[1]):
            assert float(lam[n][c, 0, 0]) == _pct(acts[n][:, c], 99.5), (n, c)


def test_auto_batch_bounds_memory():
    snn = _snn()
    neurons = [n for n, p in snn.nodes.items() if isinstance(p, P.IF)]
    per = auto_batch(snn, neurons, 1, itemsize=8, budget=1 << 40)
    small = auto_batch(snn, neurons, 100, itemsize=8, budget=1 << 20)
    assert per == 256 and 1 <= small < per
    types = snn.verify()
    rec = sum(int(np.prod(types[n].shape)) for n in neurons)
    assert small == 1 or small * 100 * 8 * rec <= 1 << 20


def test_normalize_options_are_checked():
    with pytest.raises(ValueError, match="dtype"):
        Normalize(dtype="float16")


@pytest.mark.parametrize("wdt,want", [("source", np.float32), ("float64", np.float64)])
def test_convert_stores_the_sources_precision(tmp_path, wdt, want):
    import json

    from n3ml.cli import main

    out, rep = tmp_path / "snn", tmp_path / "report.json"
    code = main(["convert", "examples/ann_to_snn/cnn.onnx", "--target", "ir", "-o", str(out), "--steps", "10",
                 "-p", "fold-batchnorm,ann-to-snn,normalize{samples=20}", "--calibration-batch", "6",
                 "--weights-dtype", wdt, "--calibration", "examples/ann_to_snn/calib.npz", "--report", str(rep)])
    assert code == 0
    g = load_model(str(next(out.glob("*.n3ml"))))
    weighted = [p for p in g.nodes.values() if isinstance(p, (P.Dense, P.Conv2d))]
    assert weighted and all(p.weight.dtype == want for p in weighted)
    assert all(p.bias is None or p.bias.dtype == want for p in weighted)
    assert json.loads(rep.read_text())["samples"] == 20


def test_convert_refuses_a_negative_batch(tmp_path, capsys):
    from n3ml.cli import main

    code = main(["convert", "examples/ann_to_snn/cnn.onnx", "--target", "ir", "-o", str(tmp_path / "o"),
                 "--calibration-batch", "-2"])
    assert code != 0 and "--calibration-batch" in capsys.readouterr().err
