"""The conversion report at scale: statistics merged batch by batch equal the all-at-once ones, the
batch size changes nothing, and progress goes to stderr only for steps over a second."""

from __future__ import annotations

import io

import numpy as np
import pytest

from n3ml.commands._engines import pass_context
from n3ml.loader import load_model
from n3ml.passes import PassManager
from n3ml.passes.base import Progress
from n3ml.passes.report import Moments, conversion_report

CAL = dict(np.load("examples/ann_to_snn/calib.npz"))
RNG = np.random.default_rng(3)


def test_moments_merged_per_batch_match_numpy():
    a = RNG.normal(3.0, 1.0, size=3001)
    r = 0.8 * a + RNG.normal(0.0, 0.3, size=a.size) + 1e3  # a large offset: raw sums would cancel
    m = Moments()
    lo = 0
    while lo < a.size:
        hi = lo + int(RNG.integers(1, 300))
        m.add(a[lo:hi], r[lo:hi])
        lo = hi
    assert m.n == a.size
    assert m.correlation() == pytest.approx(np.corrcoef(a, r)[0, 1], rel=1e-12)
    assert m.ma == pytest.approx(a.mean(), rel=1e-13) and m.mr == pytest.approx(r.mean(), rel=1e-13)
    assert m.sat == int((a > 1).sum())
    flat = Moments()
    flat.add(np.ones(10), np.arange(10.0))
    assert flat.correlation() is None  # a constant activation has no correlation


def test_report_does_not_depend_on_the_batch_size():
    ctx = {"calibration": {"x": CAL["x"][:24], "labels": CAL["labels"][:24]}, "report": None, "progress": False}
    snn = PassManager.from_string("fold-batchnorm,ann-to-snn,normalize{report=false}").run(
        load_model("examples/ann_to_snn/cnn.onnx"), ctx)
    x = {"x": CAL["x"][:24].astype(np.float64)}
    args = dict(steps=12, labels=CAL["labels"][:24], ann=ctx["ann"], context={"progress": False})
    whole = conversion_report(snn, x, batch=24, **args)
    cut = conversion_report(snn, x, batch=5, **args)
    assert whole["accuracy"] == cut["accuracy"]
    for a, b in zip(whole["layers"], cut["layers"]):
        assert a["node"] == b["node"] and a["saturated"] == b["saturated"]
        assert a["snn_rate_mean"] == pytest.approx(b["snn_rate_mean"], rel=1e-12)
        assert a["correlation"] == pytest.approx(b["correlation"], rel=1e-9)
    # the torch executor's held runs give the interpreter's spikes in float64
    pc = pass_context()
    if pc["engine"] != "torch":
        pytest.skip("torch engine not available")
    held = pc["engines"]["torch"]
    tor = conversion_report(snn, x, batch=7, engine=held, **args)
    assert tor["accuracy"] == whole["accuracy"]
    for a, b in zip(whole["layers"], tor["layers"]):
        assert a["snn_rate_mean"] == pytest.approx(b["snn_rate_mean"], rel=1e-12)


def test_progress_prints_one_line_for_slow_steps_only():
    out = io.StringIO()
    with Progress("quick", 10, "samples", stream=out) as bar:
        bar.update(10)
    assert out.getvalue() == ""  # under a second: nothing
    with Progress("slow", 10, "samples", stream=out) as bar:
        bar.t0 -= 2.0  # as if it had started two seconds ago
        bar.update(10)
    assert out.getvalue().startswith("slow: 10 samples ") and out.getvalue().count("\n") == 1
    quiet = io.StringIO()
    with Progress("slow", 10, stream=quiet, enabled=False) as bar:
        bar.t0 -= 2.0
    assert quiet.getvalue() == ""
