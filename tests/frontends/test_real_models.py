"""Real peer models convert unchanged and reproduce the library's spikes exactly (tests/frontends/corpus.py).

For every model: trace it as its source wrote it, check the graph is per step (each neuron module
once, not the loop unrolled), run it on the reference interpreter (float64) and the torch executor,
and compare with the library's own run: spikes identical at every step, voltages to 1e-9, readouts
over time (`.mean(0)`) through the Output's `reduce`. Every spiking layer must fire (rate in (0, 1)).
`python -m tests.frontends.test_real_models` prints the table of docs/frontends.md.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

pytest.importorskip("snntorch", reason="snnTorch is not installed (make setup-peers)")
pytest.importorskip("norse.torch", reason="Norse is not installed (make setup-peers)")
pytest.importorskip("spikingjelly", reason="SpikingJelly is not installed (make setup-peers)")

from n3ml.errors import UnsupportedError  # noqa: E402
from n3ml.frontends.torch import trace  # noqa: E402
from n3ml.ir import prims as P  # noqa: E402

from . import corpus  # noqa: E402
from .helpers import run_graph  # noqa: E402

pytestmark = pytest.mark.peers


def graph_input(case: corpus.Case, graph, x: torch.Tensor) -> np.ndarray:
    """What the converted graph is fed: the sequence (T, B, ...) the model saw."""
    inp = next(p for p in graph.nodes.values() if isinstance(p, P.Input))
    assert not inp.hold or inp.hold == case.steps
    (feed,) = case.graph_input(graph, x).values()
    return feed


def check(case: corpus.Case, dtype=torch.float64) -> dict:
    """Trace, run the graph in float64 on both engines, compare with the library's run in `dtype`
    (float32 for models the library runs only in float32: snnTorch's spikes are float32)."""
    if case.f32_only:
        dtype = torch.float32
    model = case.model(dtype)
    x = case.make_input(dtype)
    t0 = time.perf_counter()
    graph = trace(model, case.input_shape)
    took = time.perf_counter() - t0
    expected = case.reference(model, x).double().numpy()
    feed = graph_input(case, graph, x)
    (out_name,) = graph.output_names[:1]
    reduce = graph.nodes[out_name].reduce
    results = run_graph(graph, feed, out_name)
    hidden = hidden_spikes(case, model, x, graph, feed)
    for engine, got in results.items():
        got = np.asarray(got, dtype=np.float64)
        if reduce == "mean":
            got = got.mean(0)
        elif reduce == "sum":
            got = got.sum(0)
        assert got.shape == expected.shape, (engine, got.shape, expected.shape)
        if case.voltage or reduce != "none":
            atol = 1e-9 if dtype == torch.float64 else 1e-5  # float32 voltages against the float64 graph
            np.testing.assert_allclose(got, expected, rtol=0, atol=atol, err_msg=f"{case.name} {engine}")
        else:
            bad = np.argwhere(got != expected)
            assert bad.size == 0, f"{case.name} {engine}: {len(bad)} spikes differ, first at {tuple(bad[0])}"
    return {"graph": graph, "trace_s": took, "reduce": reduce, "hidden": hidden}


def hidden_spikes(case, model, x, graph, feed) -> int:
    """Every spiking layer's spikes in the graph (recorded by the interpreter) equal the library's, element
    for element; returns how many layers were compared (layers named by their module path)."""
    from n3ml.frontends.torch.vocab import _ident
    from n3ml.ir.interp import run

    lib = corpus.layer_spikes(case, model, x)
    names = {p: _ident(p) for p in lib if _ident(p) in graph.nodes}
    res = run(graph, {graph.input_names[0]: feed}, record=list(names.values()))
    for p, n in names.items():
        got, want = res.states[n], lib[p].numpy()
        assert got.shape == want.shape, (case.name, p, got.shape, want.shape)
        bad = np.argwhere(got != want)
        assert bad.size == 0, f"{case.name}: layer {p}: {len(bad)} spikes differ, first at {tuple(bad[0])}"
    return len(names)


def neuron_nodes(graph) -> int:
    return sum(isinstance(p, P.Neuron) for p in graph.nodes.values())


@pytest.mark.parametrize("case", corpus.CASES, ids=lambda c: c.name)
def test_real_model_converts_unchanged_with_identical_spikes(case):
    res = check(case)
    dtype = torch.float32 if case.f32_only else torch.float64
    model = case.model(dtype)
    r = corpus.layer_rates(case, model, case.make_input(dtype))
    assert r, "no spiking layer seen"
    silent = {p: v for p, v in r.items() if not 0.0 < v < 1.0}
    assert not silent, f"layers that never or always fire: {silent}"
    # a per-step graph: one neuron population per neuron module call chain, not T copies
    n_modules = len(corpus.spiking_modules(model)) + 2
    assert neuron_nodes(res["graph"]) <= 2 * n_modules + 2
    assert res["hidden"] == len(r), f"compared {res['hidden']} of {len(r)} spiking layers element by element"


@pytest.mark.parametrize("case", [c for c in corpus.CASES if c.float32 and not c.f32_only and "resnet" not in c.name],
                         ids=lambda c: c.name)
def test_real_model_float32_spikes_match(case):
    """The library's float32 run against the graph of the float32 model (run in float64): every spiking
    layer identical, voltages to 1e-5."""
    check(case, torch.float32)


def test_static_input_is_marked_held_for_the_loop_length():
    case = next(c for c in corpus.CASES if c.name == "snntorch-tutorial5")
    graph = trace(case.model(torch.float32), case.input_shape)
    assert graph.nodes["x"].hold == corpus.NUM_STEPS
    assert [p.op for p in graph.nodes.values()].count("LIF") == 2


def test_rate_readout_is_an_output_reduce():
    case = next(c for c in corpus.CASES if c.name == "sj-conv-fashion-mnist")
    graph = trace(case.model(torch.float64), case.input_shape)
    assert graph.nodes["out"].reduce == "mean"
    assert graph.nodes["x"].hold == corpus.T


def test_sew_and_of_analog_values_is_refused_with_reason_and_line():
    """SEW's AND/IAND are exact on spikes; on membrane potentials (a non-spiking neuron) they are products."""
    model = corpus.sew18(torch.float64, cnf="AND")
    model.layer1[0].sn2 = torch.nn.Identity()  # the block's second branch is then the BatchNorm's analog output
    with pytest.raises(UnsupportedError, match=r"module `layer1.0` \(.*sew_resnet.BasicBlock\).*not both 0/1 "
                                               r"spikes.*sew_resnet.py:\d+: return x \* y"):
        trace(model.double().eval(), (3, 16, 16))


def test_value_dependent_loop_is_refused_with_the_source_line():
    import snntorch as snn

    class Until(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.lif = torch.nn.Linear(4, 4), snn.Leaky(beta=0.9)

        def forward(self, x):
            mem = self.lif.init_leaky()
            spk = torch.zeros(1)
            while spk.sum() == 0:  # runs until the first spike
                spk, mem = self.lif(self.fc(x), mem)
            return spk

    with pytest.raises(UnsupportedError, match=r"data-dependent control flow.*test_real_models.py:\d+: while spk"):
        trace(Until(), (4,))


def _table() -> None:  # pragma: no cover - documentation helper
    print("| model | source | patterns | converts | agreement | spike rate per layer |")
    print("|---|---|---|---|---|---|")
    for case in corpus.CASES:
        dt = torch.float32 if case.f32_only else torch.float64
        try:
            res = check(case)
            ok = f"yes ({res['trace_s']:.2f} s)"
            out = "output voltages to 1e-9" if case.voltage else "output spikes 100%"
            if case.f32_only:
                out = out.replace("1e-9", "1e-5")
            if res["reduce"] != "none":
                out += f" ({res['reduce']} readout)"
            peer = {"snntorch": "snnTorch", "norse": "Norse", "sj": "SpikingJelly"}[case.name.split("-")[0]]
            lib = f"float32 {peer} vs float64 graph" if case.f32_only else "float64"
            agree = f"{lib}: {out}; {res['hidden']} spiking layers 100% identical"
        except Exception as e:  # noqa: BLE001
            ok, agree = "no", str(e)[:80]
        r = corpus.layer_rates(case, case.model(dt), case.make_input(dt))
        rr = " ".join(f"{v:.2f}" for v in r.values())
        print(f"| {case.name} | {case.source} | {case.patterns} | {ok} | {agree} | {rr} |")


if __name__ == "__main__":  # pragma: no cover
    _table()


def test_cli_converts_a_package_model_from_its_state_dict(tmp_path):
    """`n3ml convert weights.pt --model norse.torch.models.conv:ConvNet --model-args ... --input-shape`."""
    from norse.torch.models.conv import ConvNet

    from n3ml.cli import main as cli_main
    from n3ml.ir.text import load

    case = next(c for c in corpus.CASES if c.name == "norse-convnet")
    model = case.model(torch.float32)
    torch.save(model.state_dict(), tmp_path / "convnet.pt")
    out = tmp_path / "ir"
    assert cli_main(["convert", str(tmp_path / "convnet.pt"), "--model", "norse.torch.models.conv:ConvNet",
                     "--model-args", '{"feature_size": 16}', "--input-shape", "1,16,16", "--target", "ir",
                     "-o", str(out)]) == 0
    graph = load(out / "model.n3ml")
    x = case.make_input(torch.float32)
    fresh = ConvNet(feature_size=16)
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        expected = fresh(x).double().numpy()
    got = run_graph(graph, x.double().numpy())
    for engine, v in got.items():
        np.testing.assert_allclose(np.asarray(v, dtype=np.float64), expected, rtol=0, atol=1e-4, err_msg=engine)


def test_cli_converts_a_tutorial_loop_model_with_held_input(tmp_path):
    from n3ml.cli import main as cli_main
    from n3ml.ir.text import load

    case = next(c for c in corpus.CASES if c.name == "snntorch-tutorial5")
    model = case.model(torch.float32)
    torch.save(model.state_dict(), tmp_path / "t5.pt")
    out = tmp_path / "ir"
    assert cli_main(["convert", str(tmp_path / "t5.pt"), "--model", "tests.frontends.corpus:Tutorial5Net",
                     "--input-shape", "64", "--target", "ir", "-o", str(out)]) == 0
    graph = load(out / "model.n3ml")
    assert graph.nodes["x"].hold == corpus.NUM_STEPS
    x = case.make_input(torch.float32)
    expected = case.reference(model, x).double().numpy()
    got = run_graph(graph, np.repeat(x.double().numpy()[None], corpus.NUM_STEPS, 0))
    for engine, v in got.items():
        assert (np.asarray(v) == expected).all(), engine


def test_random_encoder_inside_forward_is_refused():
    import snntorch as snn
    from snntorch import spikegen

    class Encoded(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.lif = torch.nn.Linear(4, 4), snn.Leaky(beta=0.9, init_hidden=True)

        def forward(self, x):
            spikes = spikegen.rate(x, num_steps=3)
            return torch.stack([self.lif(self.fc(spikes[t])) for t in range(3)])

    with pytest.raises(UnsupportedError, match=r"`clamp` on a traced tensor.*snntorch/spikegen.py:\d+"):
        trace(Encoded(), (4,))

    class Bernoulli(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.lif = torch.nn.Linear(4, 4), snn.Leaky(beta=0.9, init_hidden=True)

        def forward(self, x):
            return torch.stack([self.lif(self.fc(torch.bernoulli(x))) for t in range(3)])

    with pytest.raises(UnsupportedError, match=r"random numbers drawn inside forward.*PoissonRate.*torch.bernoulli"):
        trace(Bernoulli(), (4,))


def test_tracing_leaves_the_model_as_it_was():
    """The recording run restores every module's state and hooks (a later library run is unaffected)."""
    import copy

    case = next(c for c in corpus.CASES if c.name == "sj-lif-fc-mnist")
    model = copy.deepcopy(case.model(torch.float64))  # the hook below stays off the shared model
    x = case.make_input(torch.float64)
    before = case.reference(model, x)
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(1))
    trace(model, case.input_shape)
    assert torch.equal(case.reference(model, x), before) and calls


def test_simulate_holds_a_static_input_for_the_models_loop_length(tmp_path, capsys):
    """`n3ml simulate` without --steps: a static (B, *shape) input is held for the Input's `hold` (the tutorial's
    num_steps), giving the library's spikes; random input or a static sample for a sequence Input is refused."""
    from n3ml.cli import main as cli_main
    from n3ml.ir.text import load

    case = next(c for c in corpus.CASES if c.name == "snntorch-tutorial5")
    model = case.model(torch.float32)
    torch.save(model.state_dict(), tmp_path / "t5.pt")
    assert cli_main(["convert", str(tmp_path / "t5.pt"), "--model", "tests.frontends.corpus:Tutorial5Net",
                     "--input-shape", "64", "--target", "ir", "-o", str(tmp_path / "ir")]) == 0
    ir = str(tmp_path / "ir" / "model.n3ml")
    x = case.make_input(torch.float32)
    np.savez(tmp_path / "x.npz", x=x.double().numpy())
    assert cli_main(["simulate", ir, "--input", str(tmp_path / "x.npz"), "-o", str(tmp_path / "o.npz")]) == 0
    spikes = np.load(tmp_path / "o.npz")["out"]
    assert spikes.shape[0] == corpus.NUM_STEPS
    assert (spikes == case.reference(model, x).double().numpy()).all()
    capsys.readouterr()
    assert cli_main(["simulate", ir]) == 1
    assert f"the Input `x` was held for {corpus.NUM_STEPS} steps" in capsys.readouterr().err
    seq = next(c for c in corpus.CASES if c.name == "snntorch-rleaky")
    g = trace(seq.model(torch.float32), seq.input_shape)
    assert not g.nodes["x"].hold
    from n3ml.ir.text import save
    save(g, tmp_path / "seq.n3ml")
    np.savez(tmp_path / "s.npz", x=np.zeros((2, 6)))
    assert cli_main(["simulate", str(tmp_path / "seq.n3ml"), "--input", str(tmp_path / "s.npz")]) == 1
    assert "records no number of steps to hold it for" in capsys.readouterr().err
    np.savez(tmp_path / "s.npz", x=np.zeros((5, 2, 6)))
    assert cli_main(["simulate", str(tmp_path / "seq.n3ml"), "--input", str(tmp_path / "s.npz"), "-o",
                     str(tmp_path / "o2.npz")]) == 0
    assert load(tmp_path / "seq.n3ml").nodes["x"].hold == 0


def test_cli_converts_a_zoo_factory_given_its_neuron_class(tmp_path, capsys):
    """`--model spikingjelly...sew_resnet:sew_resnet18 --model-args '{"spiking_neuron": "pkg.mod:IFNode",
    "surrogate_function": "pkg.mod:ATan()", "cnf": "IAND"}'`: objects named in --model-args are imported (and
    called with "()"); the package's own single-step network gives the multi-step run's voltages."""
    from n3ml.cli import main as cli_main
    from n3ml.ir.text import load

    case = next(c for c in corpus.CASES if c.name == "sj-sew-resnet18-iand")
    model = case.model(torch.float64)
    torch.save(model.state_dict(), tmp_path / "sew.pt")
    args = ('{"spiking_neuron": "spikingjelly.activation_based.neuron:IFNode", "cnf": "IAND", "num_classes": 10, '
            '"surrogate_function": "spikingjelly.activation_based.surrogate:ATan()", "detach_reset": true}')
    assert cli_main(["convert", str(tmp_path / "sew.pt"), "--model",
                     "spikingjelly.activation_based.model.sew_resnet:sew_resnet18", "--model-args", args,
                     "--input-shape", "3,8,8", "--target", "ir", "-o", str(tmp_path / "ir")]) == 0
    graph = load(tmp_path / "ir" / "model.n3ml")
    x = case.make_input(torch.float64)
    expected = case.reference(model, x).numpy()
    for engine, got in run_graph(graph, x.numpy()).items():
        np.testing.assert_allclose(np.asarray(got, dtype=np.float64), expected, rtol=0, atol=1e-9, err_msg=engine)
    capsys.readouterr()
    assert cli_main(["convert", str(tmp_path / "sew.pt"), "--model",
                     "spikingjelly.activation_based.model.sew_resnet:sew_resnet18", "--model-args",
                     '{"spiking_neuron": "spikingjelly.activation_based.neuron:NoSuchNode"}', "--input-shape",
                     "3,8,8", "--target", "ir", "-o", str(tmp_path / "ir2")]) == 1
    assert "spiking_neuron='spikingjelly.activation_based.neuron:NoSuchNode' names no importable object" \
        in capsys.readouterr().err


def test_max_over_time_readout_is_refused_with_the_rewrite():
    """norse/task/mnist.py's LIFConvNet decodes with `torch.max(voltages, 0)`: no Output form, refused by name."""
    from norse.torch.models.conv import ConvNet

    class LIFConvNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rsnn = ConvNet(feature_size=16)

        def forward(self, x):
            voltages = self.rsnn(x)
            m, _ = torch.max(voltages, 0)
            return torch.nn.functional.log_softmax(m, dim=1)

    with pytest.raises(UnsupportedError, match=r"`max` over the time axis as the readout.*take the maximum outside "
                                               r"the model.*test_real_models.py:\d+: m, _ = torch.max"):
        trace(LIFConvNet(), (1, 16, 16))
