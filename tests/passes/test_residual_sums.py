"""Residual sums of currents (MS-ResNet's membrane shortcut) for targets whose neurons read one Add of synapses:
nested Adds opened by distribute-synapse (shared synapses copied), and merge-convs composing a convolution
with an unpadded one after it (the 1x1 downsample reading a sum of convolutions). Exact, so the quantized
form (quantize{profile=loihi2}) exists too."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from n3ml.backends.lava.lower import lower
from n3ml.backends.torch import run as exec_run
from n3ml.ir import interp, prims as P
from n3ml.ir.text import parse
from n3ml.passes import PassManager
from n3ml.passes.legalize import _compose_conv, legalize
from n3ml.registry import TARGETS, lookup


def _rand(seed, *shape):
    return np.random.default_rng(seed).normal(0, 0.6, shape).round(3)


def _t(a) -> str:
    return f"tensor<f64>({', '.join(map(str, a.shape))})[{', '.join(map(str, a.ravel()))}]"


# x -> c1, c2 (spikes of n0); add = c1 + c2 -> n1; add2 = c3(n1) + add -> n2: `add` is read by n1 and add2
NESTED = f"""n3ml 1
graph nested(dt=1.0ms, scheme=euler) {{
  x = Input(shape=(3,), kind=analog)
  c0 = Dense(x, weight={_t(_rand(0, 4, 3))}, bias={_t(_rand(1, 4))})
  n0 = LIF(c0, tau=4.0ms, theta=0.5, reset=to-value)
  c1 = Dense(n0, weight={_t(_rand(2, 4, 4))})
  c2 = Dense(n0, weight={_t(_rand(3, 4, 4))}, bias={_t(_rand(4, 4))})
  add = Add(c1, c2)
  n1 = LIF(add, tau=4.0ms, theta=0.5, reset=to-value)
  c3 = Dense(n1, weight={_t(_rand(5, 4, 4))})
  add2 = Add(c3, add)
  n2 = IF(add2, theta=0.5, reset=to-value)
  out = Output(n2)
  out1 = Output(n1)
}}
"""


def _same_outputs(g, h, x):
    a, b = interp.run(g, x).outputs, interp.run(h, x).outputs
    e = {k: np.asarray(v) for k, v in exec_run(h, x).outputs.items()}
    for k in a:
        np.testing.assert_array_equal(b[k], a[k])
        np.testing.assert_array_equal(e[k], a[k])
    return a


def test_nested_add_is_opened_with_its_shared_synapses_copied():
    g = parse(NESTED)
    h = PassManager.from_string("distribute-synapse,dce").run(g)
    terms = h.inputs_of("add2")
    assert len(terms) == 3 and terms[0] == "c3" and not any(isinstance(h.nodes[t], P.Add) for t in terms)
    assert h.inputs_of("add") == ["c1", "c2"] and h.users_of("add") == ["n1"]  # n1 still reads the inner sum
    for t in terms:  # every synapse feeds exactly one Add (a quantized synapse belongs to one neuron)
        assert len(h.users_of(t)) == 1
    copies = [t for t in terms if t != "c3"]
    np.testing.assert_array_equal(h.nodes[copies[0]].weight, g.nodes["c1"].weight)
    np.testing.assert_array_equal(h.nodes[copies[1]].bias, g.nodes["c2"].bias)
    x = np.random.default_rng(7).random((20, 3, 3))
    a = _same_outputs(g, h, x)
    assert 0.05 < a["out"].mean() < 0.9 and 0.05 < a["out1"].mean() < 0.9
    ctx = {}
    q = PassManager.from_string("quantize{profile=loihi2,input_scale=16}").run(g, ctx)
    assert set(ctx["report"]["quantize"]["layers"]) == {"n0", "n1", "n2"}
    lower(q)


def test_inner_add_read_only_by_the_outer_one_goes():
    g = parse(NESTED.replace("  n1 = LIF(add,", "  n1 = LIF(c2x,").replace(
        "  c2 = Dense(n0,", "  c2x = Dense(n0, weight=tensor<f64>(4, 4)[" + ", ".join(["0.1"] * 16) + "])\n  c2 = Dense(n0,"))
    h = PassManager.from_string("distribute-synapse").run(g)
    assert "add" not in h.nodes and h.inputs_of("add2") == ["c3", "c1", "c2"]
    _same_outputs(g, h, np.random.default_rng(8).random((12, 2, 3)))


@pytest.mark.parametrize("k1,s1,p1,k2,s2,groups", [(3, 2, 1, 1, 2, 1), (7, 2, 3, 1, 2, 1), (3, 1, 1, 3, 2, 1),
                                                   (2, 2, 0, 2, 1, 1), (3, 1, 1, 1, 1, 2)])
def test_unpadded_convolution_after_any_convolution_is_one_convolution(k1, s1, p1, k2, s2, groups):
    rng = np.random.default_rng(k1 * 10 + k2)
    c1 = P.Conv2d(weight=rng.normal(size=(4, 4 // groups, k1, k1)), bias=rng.normal(size=4), stride=(s1, s1),
                  padding=(p1, p1), groups=groups)
    c2 = P.Conv2d(weight=rng.normal(size=(5, 4, k2, k2)), bias=rng.normal(size=5), stride=(s2, s2))
    m = _compose_conv(c1, c2, (4, 9, 9))
    assert m is not None and m.stride == (s1 * s2, s1 * s2)
    x = rng.normal(size=(2, 4, 9, 9))
    y1 = interp.conv2d(x, c1.weight, c1.bias, c1.stride, c1.padding, (1, 1), groups)
    want = interp.conv2d(y1, c2.weight, c2.bias, c2.stride, (0, 0), (1, 1), 1)
    got = interp.conv2d(x, m.weight, m.bias, m.stride, m.padding, (1, 1), 1)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # a padded second convolution reads zeros where the composite would read c1's border: not composed
    padded = P.Conv2d(weight=c2.weight, bias=c2.bias, stride=(s2, s2), padding=(1, 1))
    if (k1, s1, p1) != (2, 2, 0):  # (a tiling first convolution composes with padding: the older case)
        assert _compose_conv(c1, padded, (4, 9, 9)) is None


def _sj_ms_resnet():
    """SpikingJelly's own MSResNet (spikingjelly.activation_based.model.ms_resnet), three stages of one block, 4
    base channels, BatchNorms given trained-looking statistics (its zero-initialised residual BNs would make
    the branches silent)."""
    torch = pytest.importorskip("torch")
    ms_resnet = pytest.importorskip("spikingjelly.activation_based.model.ms_resnet")
    from n3ml.frontends.torch import trace

    torch.manual_seed(0)
    m = ms_resnet.MSResNet(T=2, num_classes=5, layers=(1, 1, 1), base_channels=4, stem_kernel_size=3)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
                mod.weight.mul_(1.5)
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.copy_(torch.rand(mod.num_features, generator=g) * 0.1)
                mod.running_var.copy_(torch.rand(mod.num_features, generator=g) * 0.5 + 0.5)
                mod.weight.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
                mod.bias.copy_(torch.rand(mod.num_features, generator=g) * 0.3)
    m = m.double().eval()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        graph = trace(m, (3, 8, 8))
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = m(x).numpy()
    return graph, np.repeat(x.numpy()[None], 2, 0), y


def test_spikingjelly_ms_resnet_legalizes_for_lava_exactly_and_quantizes():
    g, x, y = _sj_ms_resnet()
    h = legalize(g, lookup(TARGETS, "lava", "target")().legality)
    lower(h)  # refused before: "Lava connections read spikes of a neuron or an input; its input `stem_0` is a Conv2d"
    for n, p in h.nodes.items():  # every neuron reads one synapse or one Add of synapses
        if isinstance(p, P.Neuron):
            (src,) = h.inputs_of(n)
            terms = h.inputs_of(src) if isinstance(h.nodes[src], P.Add) else [src]
            assert all(isinstance(h.nodes[t], (P.Dense, P.Conv2d)) for t in terms), n
    neurons = [n for n, p in g.nodes.items() if isinstance(p, P.Neuron)]
    a, b = interp.run(g, x, record=neurons), interp.run(h, x, record=neurons)
    assert sum(a.states[n].sum() for n in neurons) >= 40
    for n in neurons:
        np.testing.assert_array_equal(b.states[n], a.states[n])
    np.testing.assert_allclose(b.outputs["out"].mean(0), y, atol=1e-12)  # the model's own logits
    e = exec_run(h, x).outputs["out"]
    np.testing.assert_allclose(np.asarray(e), a.outputs["out"], atol=1e-12)
    ctx = {}
    q = PassManager.from_string("quantize{profile=loihi2,input_scale=16,readout=voltage}").run(g, ctx)
    assert "head_value" in ctx["report"]["quantize"]["layers"]
    lower(q)


@pytest.mark.parametrize("size,k,s,p", [(1, 3, 1, 1), (1, 3, 2, 1), (2, 3, 2, 1), (5, 3, 1, 1), (1, 7, 2, 3)])
def test_quantize_crops_kernel_taps_that_read_only_padding(size, k, s, p):
    from n3ml.passes.quantize import _live_taps

    rng = np.random.default_rng(size * 100 + k * 10 + s)
    c = P.Conv2d(weight=rng.normal(size=(3, 2, k, k)), stride=(s, s), padding=(p, p))
    cropped = _live_taps(c, (2, size, size))
    x = rng.normal(size=(4, 2, size, size))
    want = interp.conv2d(x, c.weight, None, c.stride, c.padding, (1, 1), 1)
    got = interp.conv2d(x, cropped.weight, None, cropped.stride, cropped.padding, (1, 1), 1)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)  # (the padded taps added zeros)
    if size == 1:  # a 1x1 map is read by the kernel's centre alone
        assert cropped.weight.shape[2:] == (1, 1) and cropped.padding == (0, 0)
    if size == 5:
        assert cropped is c  # every tap reads the map somewhere


def test_quantized_ms_resnet_keeps_only_live_taps():
    g, x, _ = _sj_ms_resnet()
    q = PassManager.from_string("quantize{profile=loihi2,input_scale=16,readout=voltage}").run(g)
    types = q.verify()
    for n, p in q.nodes.items():
        if isinstance(p, P.Conv2d) and types[q.inputs_of(n)[0]].shape[1:] == (1, 1):
            assert p.weight.shape[2:] == (1, 1), n
    lower(q)
