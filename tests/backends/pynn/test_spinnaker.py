"""The pynn target's program for SpiNNaker, mapped by the real sPyNNaker 7.4 onto a virtual SpiNN-5 board
(partitioning, placement, routing, data specifications; nothing runs without a board), and
`check_spinnaker` agreeing with sPyNNaker's own verdicts both ways.

Needs the venv of `make setup-spinnaker` (.venv-spinnaker, or $N3ML_SPINNAKER_VENV); skipped without it.
All programs run in one sPyNNaker process (the tool chain takes ~20 s to start; each mapping then a few
seconds), driven by the small script DRIVER, which runs each emitted run.py as `python run.py` would.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from n3ml.backends.pynn import PynnTarget, emit_pynn, lower_ir_to_pynn
from n3ml.backends.pynn.lower import SPINNAKER, spinnaker_cores, spinnaker_delay_slots
from n3ml.errors import UnsupportedError
from n3ml.io import random_inputs
from n3ml.ir import LIF, Delay, Dense, Graph, Input, Output

from ..nest import graphs as G

ROOT = Path(__file__).resolve().parents[3]
VENV = Path(os.environ.get("N3ML_SPINNAKER_VENV", ROOT / ".venv-spinnaker"))
PYTHON = VENV / "bin" / "python"
CONFIG = VENV / "spinnaker-config"  # holds .spynnaker.cfg: virtual_board = True, version = 5
pytestmark = [pytest.mark.pynn, pytest.mark.skipif(
    not (PYTHON.exists() and (CONFIG / ".spynnaker.cfg").exists()),
    reason=f"sPyNNaker is not set up in {VENV} (make setup-spinnaker)")]
T = 20

# Runs each program directory given on the command line as its __main__ (as `python run.py` does) and
# prints one JSON line per program: its exit status, the mapping it printed, or sPyNNaker's exception.
DRIVER = '''
import contextlib, io, json, runpy, sys, traceback
for d in sys.argv[1:]:
    out, result = io.StringIO(), {"dir": d}
    sys.argv = [d + "/run.py", "--input", d + "/x.npz", "-o", d + "/o.npz"]
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(d + "/run.py", run_name="__main__")
    except SystemExit as e:
        result["exit"] = e.code
    except Exception as e:
        result["error"] = type(e).__name__ + ": " + str(e)[:500]
        import pyNN.spiNNaker as sim
        with contextlib.suppress(Exception):
            sim.end()
    for line in out.getvalue().splitlines():
        if line.startswith("spinnaker mapping: "):
            result["mapping"] = json.loads(line[len("spinnaker mapping: "):])
    print("RESULT " + json.dumps(result), flush=True)
'''


def delayed(n_out: int, steps: int) -> Graph:
    """x -> Delay(steps) -> Dense -> LIF(n_out): one projection whose delay is `steps` plus the
    latency difference the lowering adds (read back from the lowered network)."""
    g = Graph(name=f"delay{steps}", dt=1.0)
    g.add("x", Input(shape=(3,)))
    g.add("d", Delay(steps=steps), "x")
    g.add("fc", Dense(weight=np.full((n_out, 3), 0.6)), "d")
    g.add("lif", LIF(tau=5.0, theta=1.0, reset="to-value"), "fc")
    g.add("out", Output(), "lif")
    return g


def delay_graph(n_out: int, over: int) -> Graph:
    """The graph whose projection delay is sPyNNaker's largest for a target of n_out neurons, plus `over`."""
    most = (1 + SPINNAKER["delay_extension_slots"]) * spinnaker_delay_slots(n_out)
    extra = max(pr.delay for pr in lower_ir_to_pynn(delayed(n_out, 0)).projections)
    return delayed(n_out, most - extra + over)


def snntorch_tutorial5() -> Graph:
    """snnTorch's Tutorial 5 network ("Training Spiking Neural Networks with snnTorch": Linear(784, 1000),
    Leaky(beta=0.95), Linear(1000, 10), Leaky(beta=0.95)), rebuilt as its user writes it for one step
    (init_hidden=True), with snnTorch's reset_mechanism="zero" (its default "subtract" has no PyNN
    standard cell), traced by n3ml's torch frontend with spike inputs."""
    import torch
    from torch import nn

    import snntorch as snn

    from n3ml.frontends.torch import trace

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 1000), snn.Leaky(beta=0.95, reset_mechanism="zero", init_hidden=True),
                          nn.Linear(1000, 10), snn.Leaky(beta=0.95, reset_mechanism="zero", init_hidden=True))
    return trace(model.double(), (784,), input_kind="spike")


# name -> graph: check_spinnaker accepts these, so sPyNNaker must map them
MAPS = {
    "cuba": lambda: G.example("cuba"),
    "spiking_mlp": lambda: G.example("spiking_mlp", "to-value"),
    "cuba_features": lambda: G.cuba_features("exact"),
    "encoders": G.encoders,
    "delay_at_limit": lambda: delay_graph(256, 0),  # needs a delay extension core
    "delay_at_limit_10": lambda: delay_graph(10, 0),  # 4608 steps into 10 neurons
}
if importlib.util.find_spec("snntorch") is not None:
    MAPS["snntorch_tutorial5"] = snntorch_tutorial5
# name -> (graph, what check_spinnaker says, what sPyNNaker says): both must refuse
REFUSES = {
    "if_no_leak": (lambda: G.example("spiking_cnn", "to-value"), r"`if1` \(IF\): parameter tau_m = 1e\+300",
                   "cannot be converted to 16.15 signed fixed point"),
    "li_readout": (lambda: G.example("recurrent", "to-value"), r"`readout` \(LI\): parameter v_thresh = inf",
                   "cannot be converted to 16.15 signed fixed point"),
    "delay_over_limit": (lambda: delay_graph(256, 1), r"`lif`: a delay of 289 steps .* exceeds the 288 steps",
                         "DelayExtensionException"),
    "delay_over_limit_10": (lambda: delay_graph(10, 1), r"a delay of 4609 steps .* exceeds the 4608 steps",
                            "DelayExtensionException"),
}


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    """Emit every graph of MAPS (through the target: check_spinnaker passes) and REFUSES (lowered and
    written without the check), map all of them in one sPyNNaker process; {name: result}."""
    work = tmp_path_factory.mktemp("spinnaker")
    dirs = {}
    for name, make in {**MAPS, **{k: v[0] for k, v in REFUSES.items()}}.items():
        g, out = make(), work / name
        out.mkdir()
        if name in MAPS:
            PynnTarget().emit(g, out, steps=T)
        else:
            emit_pynn(lower_ir_to_pynn(g), out, steps=T)
        np.savez(out / "x.npz", **random_inputs(g, T, 1, 5, 0.3))
        dirs[name] = out
    (work / "driver.py").write_text(DRIVER)
    env = {**os.environ, "XDG_CONFIG_HOME": str(CONFIG)}  # never the user's home (setup_spynnaker_venv.sh)
    proc = subprocess.run([str(PYTHON), str(work / "driver.py"), *map(str, dirs.values())], cwd=work, env=env,
                          capture_output=True, text=True, timeout=1200)
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            r = json.loads(line[7:])
            results[Path(r["dir"]).name] = r
    assert set(results) == set(dirs), proc.stderr[-4000:]
    return results, dirs


@pytest.mark.parametrize("name", list(MAPS))
def test_maps_on_virtual_board_with_the_predicted_cores(mapped, name):
    """sPyNNaker partitions, places and routes the program; the cores per population are those
    `spinnaker_cores` predicts; no outputs are written (nothing ran)."""
    results, dirs = mapped
    r = results[name]
    assert "error" not in r, r.get("error")
    assert r["exit"] == 0 and not (dirs[name] / "o.npz").exists()
    m = r["mapping"]
    assert m["virtual_board"] and m["machine_chips"] == 48
    assert m["machine_cores"] - m["system_cores"] == SPINNAKER["cores"]  # 808 - 48 monitors - 1 gatherer
    assert m["cores"] == spinnaker_cores(lower_ir_to_pynn(MAPS[name]()))
    assert m["routing_entries"] >= len({pr.source for pr in lower_ir_to_pynn(MAPS[name]()).projections})


@pytest.mark.parametrize("name", list(REFUSES))
def test_what_spynnaker_refuses_check_spinnaker_refuses(mapped, name, tmp_path):
    results, _ = mapped
    make, ours, theirs = REFUSES[name]
    assert theirs in results[name].get("error", ""), results[name]
    out = tmp_path / "never"
    out.mkdir()
    with pytest.raises(UnsupportedError, match=ours):
        PynnTarget().emit(make(), out, steps=T)
    assert not any(out.iterdir())


@pytest.mark.skipif(not os.environ.get("N3ML_SPINNAKER_FULL_BOARD"),
                    reason="maps a whole SpiNN-5 board (minutes); set N3ML_SPINNAKER_FULL_BOARD=1")
def test_a_full_board(tmp_path):
    """758 cores of neurons and one of spikes fill the 759 application cores: it maps; one neuron more
    is refused by sPyNNaker's placer and by check_spinnaker."""
    def layer(n):
        g = Graph(name=f"board{n}", dt=1.0)
        g.add("x", Input(shape=(1,)))
        g.add("fc", Dense(weight=np.full((n, 1), 2.0)), "x")
        g.add("n", LIF(tau=10.0, reset="to-value"), "fc")
        g.add("out", Output(), "n")
        return g

    fits = (SPINNAKER["cores"] - 1) * SPINNAKER["neurons_per_core"]
    dirs = []
    for n in (fits, fits + 1):
        g, out = layer(n), tmp_path / str(n)
        out.mkdir()
        emit_pynn(lower_ir_to_pynn(g), out, steps=5)
        np.savez(out / "x.npz", **random_inputs(g, 5, 1, 1, 0.5))
        dirs.append(out)
    PynnTarget().check(layer(fits))
    with pytest.raises(UnsupportedError, match=r"needs 760 cores .* has 759"):
        PynnTarget().check(layer(fits + 1))
    (tmp_path / "driver.py").write_text(DRIVER)
    proc = subprocess.run([str(PYTHON), str(tmp_path / "driver.py"), *map(str, dirs)], cwd=tmp_path,
                          env={**os.environ, "XDG_CONFIG_HOME": str(CONFIG)}, capture_output=True, text=True,
                          timeout=3000)
    results = [json.loads(line[7:]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(results) == 2, proc.stderr[-3000:]
    assert results[0]["mapping"]["cores_used"] == SPINNAKER["cores"]
    assert "PacmanPlaceException" in results[1]["error"]
