"""Norse's LSNNCell on NEST: an ALIF behind its synaptic current (LI -> Delay(d) -> ALIF) is one cell: NEST's
gif_psc_exp for reset none; for reset to v_reset (the LSNN's own), which no NEST model has (the NEST behaviour
that rules gif_psc_exp out is checked on NEST itself), n3ml's own NEST cell (n3ml_cell.cpp), compiled by the
program. Both exact, and the corpus model through `n3ml verify` 100% on NEST and PyNN-on-NEST."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from n3ml.backends.nest import NestTarget, lower_ir_to_nest
from n3ml.backends.netlist import fuse_current_alifs
from n3ml.errors import UnsupportedError
from n3ml.io import random_inputs
from n3ml.ir import ALIF, LI, LIF, Add, CubaLIF, Delay, Dense, Graph, Input, Output
from n3ml.ir.interp import run

from . import graphs as G
from .test_real_cells import needs_nest

pytestmark = [pytest.mark.nest]
T = 30
# n3ml's own cell is compiled by the emitted program (once per NEST, kept in ~/.cache/n3ml/nest-modules)
needs_cxx = pytest.mark.skipif(not (os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")),
                               reason="no C++ compiler: n3ml's own NEST cell is built by the program")


def lsnn(reset: str = "none", q=1.8, scheme: str = "euler") -> Graph:
    """Norse's LSNNRecurrentCell as the torch frontend writes it (LI current, Delay(1), ALIF, recurrent Dense through
    Delay(1)), beside an ALIF reading its LI directly (v_leak, v_init, per-neuron theta and q of both signs) and
    one behind a Delay(2)."""
    rng = np.random.default_rng(31)
    g = Graph(name="lsnn", dt=1.0, scheme=scheme)
    g.add("x", Input(shape=(6,)))
    g.add("fc", Dense(weight=rng.normal(0.5, 0.6, (5, 6)), bias=np.full(5, 0.05)), "x")
    g.add("sum", Add(), "fc", "rec")
    g.add("syn", LI(tau=5.0, r=5.0), "sum")
    g.add("syn_prev", Delay(steps=1), "syn")
    g.add("a", ALIF(tau=10.0, tau_adapt=20.0, q=q, theta=0.5, reset=reset), "syn_prev")
    g.add("a_prev", Delay(steps=1), "a")
    g.add("rec", Dense(weight=rng.normal(-0.1, 0.4, (5, 5))), "a_prev")
    g.add("fc2", Dense(weight=rng.normal(0.3, 0.5, (4, 6))), "x")
    g.add("syn2", LI(tau=4.0, r=2.0), "fc2")
    g.add("b", ALIF(tau=8.0, tau_adapt=15.0, q=np.linspace(-0.2, 1.0, 4) * (q != 0), theta=np.linspace(0.4, 0.8, 4),
                    reset=reset, v_leak=0.05, v_init=0.2), "syn2")
    g.add("fc3", Dense(weight=rng.normal(1.2, 0.5, (3, 5))), "a")
    g.add("syn3", LI(tau=6.0, r=3.0), "fc3")
    g.add("syn3_late", Delay(steps=2), "syn3")
    g.add("c", ALIF(tau=7.0, tau_adapt=30.0, q=q, theta=0.25, reset=reset), "syn3_late")
    for n in ("a", "b", "c"):
        g.add(f"out_{n}", Output(), n)
    return g


def test_fusion_moves_the_delay_before_the_current():
    g, fused = fuse_current_alifs(lsnn())
    assert {n: (f.syn, f.delay) for n, f in fused.items()} == {"a": ("syn", 1), "b": ("syn2", 0), "c": ("syn3", 2)}
    assert "syn" not in g.nodes and g.inputs_of("a") == ["syn_prev"] and g.inputs_of("syn_prev") == ["sum"]
    assert g.inputs_of("b") == ["fc2"] and g.inputs_of("syn3_late") == ["fc3"]


@needs_nest
@pytest.mark.parametrize("scheme", ["euler", "exact"])
def test_reset_none_is_exact(scheme, tmp_path):
    g = lsnn(scheme=scheme)
    cells = lower_ir_to_nest(g).cells
    assert {cells[n].model for n in "abc"} == {"gif_psc_exp"}
    assert cells["a"].params["q_sfa"].shape == (5, 1)
    x = random_inputs(g, T, 2, 5, 0.4)
    counts = G.assert_same_outputs(g, x, G.run_emitted(NestTarget(), g, x, tmp_path / "o", steps=T))
    assert min(counts.values()) > 10
    # the adaptation shapes these spikes: without it (q = 0) every ALIF fires differently
    plain = run(lsnn(q=0.0, scheme=scheme), x).outputs
    adapted = run(g, x).outputs
    for n in "abc":
        assert not np.array_equal(plain[f"out_{n}"], adapted[f"out_{n}"]), n


@needs_nest
@needs_cxx
@pytest.mark.parametrize("scheme", ["euler", "exact"])
def test_reset_to_value_is_exact_with_own_cell(scheme, tmp_path):
    g = lsnn(reset="to-value", scheme=scheme)
    cells = lower_ir_to_nest(g).cells
    assert {cells[n].model for n in "abc"} == {"n3ml_cell"}
    x = random_inputs(g, T, 2, 5, 0.4)
    counts = G.assert_same_outputs(g, x, G.run_emitted(NestTarget(), g, x, tmp_path / "o", steps=T))
    assert min(counts.values()) > 10
    desc = json.loads((tmp_path / "o" / "network.json").read_text())
    assert desc["modules"] == ["n3ml_cell.cpp"] and (tmp_path / "o" / "n3ml_cell.cpp").is_file()
    plain = run(lsnn(reset="to-value", q=0.0, scheme=scheme), x).outputs
    adapted = run(g, x).outputs
    for n in "abc":
        assert not np.array_equal(plain[f"out_{n}"], adapted[f"out_{n}"]), n


def test_other_refusals_are_precise():
    g = lsnn()
    g.replace("syn2", v_leak=0.1)  # not a pure filter: the LI stays a neuron, which synapses cannot read
    g.replace("b", q=0.5)  # (NEST's e-prop ALIF, the unfused cell, takes q >= 0 only)
    with pytest.raises(UnsupportedError, match=r"`b` \(ALIF\) reads the voltage of `syn2` \(LI\).*v_leak = v_init = 0"):
        lower_ir_to_nest(g)
    g = lsnn()
    g.add("out_syn", Output(), "syn")  # the LI read elsewhere too
    with pytest.raises(UnsupportedError, match=r"`a` \(ALIF\) reads the voltage of `syn` \(LI\).*feeds the ALIF alone"):
        lower_ir_to_nest(g)




@needs_nest
def test_gif_psc_exp_resets_only_while_refractory(tmp_path):
    """The NEST behaviour the to-value refusal rests on, on NEST itself: with t_ref = 0 gif_psc_exp never resets V
    (it fires step after step above threshold); with t_ref = 1 step V sits at V_reset in the step after each spike
    and the neuron neither integrates its current there nor fires, where the IR's ALIF (reset to 0, refractory 0)
    integrates and fires again in that step."""
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("gif_probe.py"))], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path, env={"PYNEST_QUIET": "1", **os.environ})
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    free, held = got["0.0"], got["1.0"]
    # t_ref = 0: consecutive spikes and V never at V_reset once it has fired
    first = free["spikes"][0]
    assert free["spikes"][1] == first + 1.0
    after = [v for t, v in zip(free["t"], free["V"]) if t > first]
    assert after and min(after[:2]) > 1.0
    # t_ref = 1 step: V == V_reset exactly in the step after every spike, no spike there, though the current
    # there would carry V from V_reset over V_T_star by itself (P21 I > 1, P21 = 0.0861 for these constants)
    spikes = held["spikes"]
    assert len(spikes) >= 2 and all(b - a >= 2.0 for a, b in zip(spikes, spikes[1:]))
    checked = [held["t"].index(s + 1.0) for s in spikes if s + 1.0 in held["t"]]
    assert len(checked) >= 2
    for i in checked:
        assert held["V"][i] == 0.0 and held["I"][i] * 0.0861 > 1.0
    # the IR's ALIF with the same drive (q = 0: the adaptation is not the point) fires in consecutive steps
    g = Graph(name="drive", dt=1.0, scheme="exact")
    g.add("x", Input(shape=(1,), kind="analog"))
    g.add("syn", LI(tau=5.0), "x")
    g.add("a", ALIF(tau=10.0, tau_adapt=20.0, q=0.0, theta=1.0, reset="to-value", v_reset=0.0), "syn")
    g.add("out", Output(), "a")
    drive = np.zeros((12, 1, 1))
    drive[0] = 200.0
    s = run(g, {"x": drive}).outputs["out"][:, 0, 0]
    assert np.any((s[1:] == 1) & (s[:-1] == 1))


@needs_nest
@needs_cxx
def test_norse_memory_lsnn_through_verify_is_identical_on_both_targets(tmp_path, capsys):
    """The corpus model (norse/task/memory.py, rebuilt: an LSNNRecurrentCell beside a LIFRecurrentCell, whose
    CubaLIF with reset to v_reset sits in a one-step loop, too short for iaf_psc_exp: n3ml's own cell too) through
    `n3ml verify --targets nest,pynn` on its corpus input: 100% on both."""
    pytest.importorskip("norse")
    import contextlib
    import io

    import torch

    from n3ml.backends.pynn import lower_ir_to_pynn
    from n3ml.frontends.torch import trace
    from n3ml.passes.legalize import legalize_for
    from tests.frontends import corpus

    case = next(c for c in corpus.CASES if c.name == "norse-memory-lsnn")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        g = trace(case.model(torch.float64), case.input_shape)
    legal = legalize_for(NestTarget(), g, say=None)
    cells = lower_ir_to_nest(legal).cells
    assert cells["layer_lsnn_cell"].model == cells["layer_lif_cell"].model == "n3ml_cell"
    assert lower_ir_to_pynn(legal, simulator="nest").cells["layer_lsnn_cell"].celltype == "native:n3ml_cell"
    text = G.verify_corpus_on_nest_and_pynn(case, g, tmp_path, capsys)
    for target in ("nest", "pynn"):
        for out in ("out0", "out1"):
            assert re.search(rf"^{target}\s+{out}\s+\S+\s+100\.00%", text, re.M), text[-3000:]


def test_module_source_must_lie_next_to_the_program(tmp_path):
    """network.json names the module's source; the program builds only a C++ file beside it."""
    from n3ml.backends.netlist_runtime import nest_module

    for name in ("../n3ml_cell.cpp", "/tmp/n3ml_cell.cpp", "n3ml_cell.py"):
        with pytest.raises(SystemExit, match="is not a C\\+\\+ file next to the program"):
            nest_module(str(tmp_path), name)
    with pytest.raises(SystemExit, match="n3ml_cell.cpp is missing"):
        nest_module(str(tmp_path), "n3ml_cell.cpp")


def test_the_module_cache_key_names_the_nest_install(tmp_path):
    """Two NEST installs with byte-identical kernels get different modules: each links its own kernel by path
    (a module built for the other would load a second kernel: std::bad_alloc at run time)."""
    from n3ml.backends.netlist_runtime import module_key

    src = tmp_path / "n3ml_cell.cpp"
    src.write_text("// cell")
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        (d / "nestkernel_api.so").write_bytes(b"kernel")
    ka, kb = (module_key(str(src), str(d / "nestkernel_api.so")) for d in (a, b))
    assert ka != kb and ka == module_key(str(src), str(a / "nestkernel_api.so"))
    src.write_text("// another cell")
    assert module_key(str(src), str(a / "nestkernel_api.so")) != ka


def cuba_loop() -> Graph:
    """A CubaLIF with reset to v_reset feeding itself through one Delay step (Norse's LIFRecurrentCell): too
    short for iaf_psc_exp, which integrates the current of the previous step."""
    g = G.cuba_features()
    g.replace("loop", steps=1)
    g.replace("cuba", refractory=0)
    return g


@needs_nest
@needs_cxx
def test_cuba_in_one_step_loop_is_exact_with_own_cell(tmp_path):
    g = cuba_loop()
    assert lower_ir_to_nest(g).cells["cuba"].model == "n3ml_cell"
    x = random_inputs(g, T, 2, 5, 0.4)
    counts = G.assert_same_outputs(g, x, G.run_emitted(NestTarget(), g, x, tmp_path / "o", steps=T))
    assert counts["out"] > 20
    two_steps = G.cuba_features()  # a two-step loop keeps NEST's own iaf_psc_exp
    two_steps.replace("cuba", refractory=0)
    assert lower_ir_to_nest(two_steps).cells["cuba"].model == "iaf_psc_exp"


def beyond() -> Graph:
    """Neurons NEST's own models refuse, each for its own reason: a LIF resetting by subtraction with refractory
    steps (eprop_iaf integrates while refractory), a CubaLIF without reset with refractory steps (gif_psc_exp
    clamps V), ALIFs resetting by subtraction (theta + b') or refractory (NEST freezes the adaptation), with q
    of both signs, and an ALIF behind its current resetting by subtraction with refractory steps."""
    rng = np.random.default_rng(41)
    g = Graph(name="beyond", dt=1.0, scheme="euler")
    g.add("x", Input(shape=(6,)))
    g.add("fc", Dense(weight=rng.normal(0.6, 0.6, (4, 6)), bias=np.full(4, 0.05)), "x")
    g.add("lif_sub", LIF(tau=6.0, theta=0.8, reset="subtract", refractory=2, v_leak=0.05), "fc")
    g.add("cuba_none", CubaLIF(tau_mem=8.0, tau_syn=3.0, theta=0.6, reset="none", refractory=1, v_init=0.3), "fc")
    g.add("alif_sub", ALIF(tau=8.0, tau_adapt=20.0, q=np.array([-0.1, 0.3, 0.6, 1.2]), theta=0.5,
                           reset="subtract"), "fc")
    g.add("alif_ref", ALIF(tau=8.0, tau_adapt=15.0, q=0.5, theta=0.5, reset="to-value", v_reset=-0.2,
                           refractory=2), "fc")
    g.add("syn", LI(tau=5.0, r=2.0), "fc")
    g.add("syn_prev", Delay(steps=1), "syn")
    g.add("alif_cur", ALIF(tau=10.0, tau_adapt=20.0, q=0.8, theta=0.4, reset="subtract", refractory=1), "syn_prev")
    for n in ("lif_sub", "cuba_none", "alif_sub", "alif_ref", "alif_cur"):
        g.add(f"out_{n}", Output(), n)
    return g


@needs_nest
@needs_cxx
def test_what_nest_models_refuse_is_exact_with_own_cell(tmp_path):
    g = beyond()
    cells = lower_ir_to_nest(g).cells
    assert {c.model for c in cells.values()} == {"n3ml_cell"}
    x = random_inputs(g, T, 2, 5, 0.4)
    counts = G.assert_same_outputs(g, x, G.run_emitted(NestTarget(), g, x, tmp_path / "o", steps=T))
    assert min(counts.values()) > 5, counts
