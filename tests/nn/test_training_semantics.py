"""Training semantics are part of the model: compile(module.to_ir()) trains like the n3ml.nn module.

Forward spikes AND weight gradients must be identical (float64) for every neuron type, every reset
mode and both reset-gradient rules, through the executor's fused scans and its step-by-step form.
"""

import numpy as np
import pytest
import torch

import n3ml.nn as snn
from n3ml.backends.torch import compile
from n3ml.ir import Dense, Graph, Input, Output
from n3ml.ir.printer import dumps
from n3ml.ir.text import parse

N_IN, N = 6, 5

NEURONS = {
    "IF": lambda **kw: snn.IF(theta=0.8, v_reset=0.1, **kw),
    "LIF": lambda **kw: snn.LIF(tau=4.0, r=2.5, v_leak=0.05, theta=0.9, v_reset=-0.1, **kw),
    "CubaLIF": lambda **kw: snn.CubaLIF(tau_syn=3.0, tau_mem=6.0, r=4.0, theta=1.1, **kw),
    "ALIF": lambda **kw: snn.ALIF(tau=5.0, tau_adapt=20.0, q=0.3, r=3.0, **kw),
}
READOUTS = {"LI": lambda: snn.LI(tau=4.0, v_leak=0.2), "Integrator": lambda: snn.Integrator(r=0.5, v_init=0.3)}


def _pair(neuron):
    torch.manual_seed(0)
    fc = torch.nn.Linear(N_IN, N).double()
    module = torch.nn.Sequential(fc, neuron)
    g = Graph(name="g")
    g.add("x", Input(shape=(N_IN,)))
    g.add("fc", Dense(weight=fc.weight.detach().numpy().copy(), bias=fc.bias.detach().numpy().copy()), "x")
    g.add("n", neuron.to_ir(), "fc")
    g.add("out", Output(), "n")
    g = parse(dumps(g)[0])  # the training rules survive the text format
    return module, fc, compile(g, dtype=torch.float64)


def _check(neuron, record: bool):
    module, fc, exe = _pair(neuron)
    rng = np.random.default_rng(3)
    x = torch.as_tensor(rng.random((25, 3, N_IN)) * 1.5)
    w = torch.as_tensor(rng.normal(size=(25, 3, N)))
    y_mod = module(x)
    (y_mod * w).sum().backward()
    res = exe(x, record=["n"]) if record else exe(x)
    y_exe = (res[0] if record else res)["out"]
    (y_exe * w).sum().backward()
    assert torch.equal(y_mod, y_exe)
    assert fc.weight.grad.abs().max() > 0
    if record:  # the step-by-step form is the module's own update (n3ml.ir.neurons.step): bit for bit
        assert torch.equal(fc.weight.grad, exe.nodes["fc"].weight.grad)
        assert torch.equal(fc.bias.grad, exe.nodes["fc"].bias.grad)
    else:  # the fused scan sums the same backward terms in another order: equal to rounding
        torch.testing.assert_close(exe.nodes["fc"].weight.grad, fc.weight.grad, rtol=1e-12, atol=1e-13)
        torch.testing.assert_close(exe.nodes["fc"].bias.grad, fc.bias.grad, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("record", [False, True], ids=["fused", "stepped"])
@pytest.mark.parametrize("detach", [True, False], ids=["detached", "attached"])
@pytest.mark.parametrize("reset", ["subtract", "to-value", "none"])
@pytest.mark.parametrize("kind", sorted(NEURONS))
def test_executor_gradients_equal_the_modules(kind, reset, detach, record):
    _check(NEURONS[kind](reset=reset, detach_reset=detach), record)


@pytest.mark.parametrize("surrogate,slope", [("arctan", None), ("triangle", 0.7), ("fast_sigmoid", 3.0)])
def test_surrogate_and_slope_travel_with_the_neuron(surrogate, slope):
    for record in (False, True):
        _check(snn.LIF(tau=3.0, r=2.0, surrogate=surrogate, slope=slope), record)
    ir = snn.LIF(tau=3.0, surrogate=surrogate, slope=slope).to_ir()
    assert (ir.surrogate, ir.slope) == (surrogate, slope)


def test_refractory_neurons_train_alike():
    _check(snn.LIF(tau=3.0, r=3.0, refractory=2, reset="to-value"), record=False)


@pytest.mark.parametrize("kind", sorted(READOUTS))
def test_readouts_train_alike(kind):
    _check(READOUTS[kind](), record=False)


def test_defaults_print_nothing_new_and_other_rules_round_trip():
    from n3ml.ir import LIF

    assert "detach_reset" not in dumps(_graph(snn.LIF(tau=2.0).to_ir()))[0]
    assert "slope" not in dumps(_graph(snn.LIF(tau=2.0, slope=25.0).to_ir()))[0]  # the default, spelled out
    text = dumps(_graph(LIF(tau=2.0, detach_reset=False, surrogate="arctan", slope=4.0)))[0]
    assert "detach_reset=false" in text and "surrogate=arctan" in text and "slope=4.0" in text
    assert dumps(parse(text))[0] == text


def test_bad_training_rules_are_refused_naming_the_node():
    from n3ml.ir import LIF, VerifyError

    for bad in (dict(surrogate="sigmoidal"), dict(slope=-1.0), dict(detach_reset=1)):
        with pytest.raises(VerifyError, match="`n`"):
            _graph(LIF(tau=2.0, **bad)).verify()


def test_compile_options_override_every_neuron():
    module, fc, _ = _pair(snn.LIF(tau=3.0, r=2.0, surrogate="triangle", slope=0.5))
    g = Graph(name="g")
    g.add("x", Input(shape=(N_IN,)))
    g.add("fc", Dense(weight=fc.weight.detach().numpy().copy()), "x")
    g.add("n", snn.LIF(tau=3.0, r=2.0).to_ir(), "fc")
    g.add("out", Output(), "n")
    exe = compile(g, dtype=torch.float64, surrogate="triangle", slope=0.5)
    assert exe.nodes["n"].spike.name == "triangle" and exe.nodes["n"].spike.slope == 0.5


def _graph(prim):
    g = Graph(name="g")
    g.add("x", Input(shape=(2,)))
    g.add("n", prim, "x")
    g.add("out", Output(), "n")
    return g


def test_one_list_of_parameter_fields():
    """The module, its operator schema and its IR primitive name the same numbers (one list, in the Params)."""
    from n3ml.nn import ops

    for module in list(NEURONS.values()) + list(READOUTS.values()):
        m = module()
        op = ops.NEURON_OPS[m.op_name]
        assert op.numeric == m.numeric
        assert set(m.numeric) == set(m.to_ir()._shape_params())
