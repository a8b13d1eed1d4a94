"""Lowering of an IR graph to PyNN 0.13 standard cells, and the SpiNNaker limits as data.

Standard cells only, so that one script runs on every PyNN backend:

* IF/LIF, reset to-value -> `IF_curr_delta` (weights in mV: r g w).
* CubaLIF, reset to-value -> `IF_curr_exp` (cm = 1 nF, weights in nA: r g_m w / P21, one extra step).
* LI / Integrator -> `IF_curr_delta` with v_thresh = inf, `v` recorded (not on SpiNNaker).
* Spike inputs -> `SpikeSourceArray`; biases -> a `SpikeSourceArray` "clock" firing every step.
* Analog inputs (simulator=nest only) -> NEST's native `spike_generator`, one event per step weighted by
  the value (`spike_weights`), without PyNN's parrot (a parrot would drop the weights).
* With simulator=nest, the nest target's native cells for what standard cells lack (eprop_iaf, gif_psc_exp,
  the adaptive e-prop neurons, and n3ml's own NEST cell `n3ml_cell` for Norse's LSNNCell and a CubaLIF with
  reset to v_reset in a one-step loop, compiled by the program).
* SynapseFilter (SpikingJelly's), simulator=nest only: the nest target's construction, the cells reading it are
  n3ml's own NEST cell with one filter port per filtered synapse; those synapses are made with NEST's own
  Connect (PyNN's receptor types are per projection and name none of the ports), weights in IR units.

PyNN's standard cells reset to v_reset only: reset "subtract"/"none" is refused (the nest target maps
it exactly). Analog inputs (SpikeSourceArray events have unit weight) run on PyNN-on-NEST only, as NEST's
native `spike_generator` whose events carry the value (spike_weights), the nest target's construction;
other simulators refuse them. The timing is that of
NEST (docs/backends/pynn.md): one-step minimum delay, compensated by per-population latencies.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ...errors import UnsupportedError
from ...ir import prims as P
from ...ir.graph import Graph
from ..netlist import (OWN_CELL, VALUE_TAU_PER_DT, CurrentAlif, Netlist, OwnCell, alif_beyond_eprop, alif_cell,
                       choose_cells, cuba_cell, current_alif_cell, filter_ports, filter_readers, fuse_current_alifs,
                       fuse_li_chains, fuse_synaptic_reset, gif_cell, li_chain_cell, lower_with_fast_cells,
                       membrane_factors, own_cuba, own_current_alif, own_filter_reader, own_neuron, own_value_readout,
                       per_neuron, refuse_fused_filter_readers, spike_maxpool_as_or, strict_threshold,
                       subtraction_compensation)

log = logging.getLogger(__name__)

TARGET = "pynn"
SOURCE_LATENCY = 2  # PyNN's spike sources (parrots on NEST) cannot emit before the second step
SIMULATORS = ("spiNNaker", "nest", "brian2")


# SpiNNaker limits: those of sPyNNaker 7.4 mapping onto one SpiNN-5 board, checked by `check_spinnaker`.
# Every refusal is one that sPyNNaker itself makes while mapping (tests/backends/pynn/test_spinnaker.py maps
# the same graphs on its virtual board and requires the same verdicts); what sPyNNaker maps but would
# compute differently (weights that saturate or vanish in its fixed point, a time step it rounds) is logged
# as a warning. The numbers are sPyNNaker's, found where its source names them.
SPINNAKER = {
    "models": ("IF_curr_delta", "IF_curr_exp", "SpikeSourceArray"),
    "neurons_per_core": 256,  # neurons per core (sPyNNaker's POP_TABLE_MAX_ROW_LENGTH; sources: no limit)
    # application cores of a SpiNN-5 board: 808 placeable (48 chips, 17 or 16 each) less one extra monitor
    # per chip and the ethernet chip's packet gatherer, as sPyNNaker places them
    "cores": 808 - 48 - 1,
    "fixed_point": (16, 15),  # neuron parameters and state are s16.15 ("cannot be converted to 16.15 ...")
    # delays: a core's ring buffer has 14 index bits shared by the neuron index, the synapse type (1 bit:
    # excitatory, inhibitory) and the delay slot; one delay extension adds 8 times the core's slots
    "ring_buffer_bits": 14,
    "synapse_type_bits": 1,
    "delay_extension_slots": 8,
    "time_step_us": 1,  # the time step is a whole number of microseconds (sPyNNaker rounds others up)
}


def _bits(n: int) -> int:
    """sPyNNaker's get_n_bits: bits that index n values."""
    return 0 if n == 0 else 1 if n == 1 else int(np.ceil(np.log2(n)))


def spinnaker_delay_slots(size: int) -> int:
    """Delay slots (steps) on the cores of a population of `size` neurons, without a delay extension."""
    lim = SPINNAKER
    atom_bits = _bits(min(size, lim["neurons_per_core"]))
    return 2 ** (lim["ring_buffer_bits"] - atom_bits - lim["synapse_type_bits"])


def spinnaker_cores(net: "PynnNetwork") -> dict[str, int]:
    """Cores sPyNNaker uses per population label: a neuron population one per 256 neurons, a spike source
    one (SpikeSourceArray has no atom limit per core), a delay extension ("<source>_delayed") one per
    slice of its source. At dt < 1 ms sPyNNaker may add synapse cores beside the neuron cores (their
    number depends on its estimates of spike rates), so the count is then a lower bound."""
    per_core = SPINNAKER["neurons_per_core"]
    neurons = {p.name for p in net.netlist.neurons}
    cores = {name: -(-p.size // per_core) if name in neurons else 1 for name, p in net.netlist.populations.items()}
    for pr in net.projections:  # a delay beyond the target's slots needs an extension of the source
        if pr.delay > spinnaker_delay_slots(net.netlist.populations[pr.target].size):
            cores[f"{pr.source}_delayed"] = cores[pr.source]
    return cores


@dataclass
class PynnCell:
    celltype: str
    params: dict[str, Any]  # PyNN parameter names and units
    weight_scale: Any  # IR units -> PyNN weight (mV for IF_curr_delta, nA for IF_curr_exp)
    extra_steps: int = 0
    v_init: Any = 0.0  # initial v, already scaled for the decay before the population's IR time
    v_offset: Any = 0.0
    record: str = "spikes"  # or "v"
    decay: Any = 1.0  # per-step membrane decay, to set v_init latency - 1 steps early
    self_weight: Any = None  # one-step self-connection (reset compensation of eprop_iaf)
    note: str = ""


@dataclass
class PynnProjection:
    source: str
    target: str
    delay: int  # steps
    receptor: str  # "excitatory" (weights >= 0), "inhibitory" (weights < 0), "port" (NEST's Connect, filter ports)
    pre: np.ndarray
    post: np.ndarray
    weights: np.ndarray
    comment: str = ""
    port: np.ndarray | None = None  # receptor "port": the filter port of each synapse (weights in IR units)


@dataclass
class PynnNetwork:
    netlist: Netlist
    cells: dict[str, PynnCell]
    projections: list[PynnProjection] = field(default_factory=list)


def cell_delta(name: str, prim, dt: float, scheme: str, n: int, native: bool = False) -> PynnCell:
    if prim.reset != "to-value":
        if native:
            return cell_native_subtract(name, prim, dt, scheme, n)
        raise UnsupportedError(f"node `{name}` ({prim.op}): reset '{prim.reset}'; PyNN's standard cells "
                               "(IF_curr_delta) reset to v_reset only. Use reset 'to-value', emit with "
                               "simulator=nest (NEST's native eprop_iaf), or the nest target")
    a, c, vl, tau = membrane_factors(name, prim, dt, scheme, n)
    vth = strict_threshold(prim.theta, vl)
    v_reset = np.asarray(prim.v_reset, np.float64) - vl
    if prim.refractory > 0 and np.any(v_reset >= vth):
        raise UnsupportedError(f"node `{name}` ({prim.op}): v_reset is above theta with refractory > 0")
    params = {"v_rest": 0.0, "cm": 1.0, "tau_m": per_neuron(tau, n), "v_thresh": per_neuron(vth, n),
              "v_reset": per_neuron(v_reset, n), "tau_refrac": prim.refractory * dt, "i_offset": 0.0}
    return PynnCell("IF_curr_delta", params, per_neuron(c, n), v_init=per_neuron(np.asarray(prim.v_init) - vl, n),
                    v_offset=vl, decay=per_neuron(a, n), note=f"{prim.op}, reset to v_reset")


def cell_native_subtract(name: str, prim, dt: float, scheme: str, n: int) -> PynnCell:
    """Reset by subtraction / none on PyNN-on-NEST: NEST's `eprop_iaf` as a native cell type (NEST units:
    PyNN scales native weights by 1000, hence the 1e-3), with the nest target's self-connection."""
    if prim.refractory > 0:  # eprop_iaf keeps integrating while refractory, the IR holds v
        return cell_native_own(own_neuron(name, prim, dt, scheme, n, "eprop_iaf integrates while refractory"))
    a, c, vl, tau = membrane_factors(name, prim, dt, scheme, n)
    vth = np.asarray(strict_threshold(prim.theta, vl))
    self_w = subtraction_compensation(prim, vth, a, n)
    params = {"E_L": 0.0, "C_m": 1.0, "tau_m": per_neuron(tau, n), "V_th": per_neuron(vth, n), "t_ref": 0.0, "I_e": 0.0,
              "c_reg": 0.0}
    return PynnCell("native:eprop_iaf", params, per_neuron(np.asarray(c) * 1e-3, n),
                    v_init=per_neuron(np.asarray(prim.v_init) - vl, n), v_offset=vl, decay=per_neuron(a, n),
                    self_weight=None if self_w is None else self_w * 1e-3,
                    note=f"{prim.op}, reset by {'subtraction' if prim.reset == 'subtract' else 'none'} "
                         "(NEST only)")


def cell_cuba(name: str, prim: P.CubaLIF, dt: float, scheme: str, n: int, native: bool = False,
              jump: Any = None) -> PynnCell:
    if prim.reset != "to-value":
        if native:
            return cell_native_gif(name, prim, dt, scheme, n, jump)
        raise UnsupportedError(f"node `{name}` (CubaLIF): reset '{prim.reset}'; IF_curr_exp resets to v_reset "
                               "only. Use reset 'to-value', emit with simulator=nest (NEST's native gif_psc_exp, "
                               "the reset as threshold adaptation), or the nest target")
    k = cuba_cell(name, prim, dt, scheme, n, "IF_curr_exp")
    # cm = 1 nF and weights in nA give the same numbers as NEST's C_m = 1 pF, weights in pA
    params = {"v_rest": 0.0, "cm": 1.0, "tau_m": k.tau_m, "tau_syn_E": k.tau_s, "tau_syn_I": k.tau_s,
              "v_thresh": k.v_th, "v_reset": k.v_reset, "tau_refrac": prim.refractory * dt, "i_offset": 0.0}
    return PynnCell("IF_curr_exp", params, k.weight_scale, extra_steps=1, v_init=k.v_init, v_offset=k.v_leak,
                    decay=k.a_m, note="CubaLIF, current-based exponential synapse, reset to v_reset")


def cell_native_gif(name: str, prim: P.CubaLIF, dt: float, scheme: str, n: int, jump: Any = None) -> PynnCell:
    """A CubaLIF with reset by subtraction / none (snnTorch's Synaptic) on PyNN-on-NEST: NEST's gif_psc_exp as a
    native cell type, the nest target's construction (netlist.gif_cell; weights / 1000 as for eprop_iaf)."""
    if prim.refractory > 0 and jump is None:  # gif_psc_exp clamps V while refractory, the IR holds it
        return cell_native_own(own_neuron(name, prim, dt, scheme, n, "gif_psc_exp clamps V while refractory"))
    k = gif_cell(name, prim, dt, scheme, n, jump)
    return PynnCell("native:gif_psc_exp", k.params, per_neuron(np.asarray(k.weight_scale) * 1e-3, n),
                    v_init=k.v_init, v_offset=k.v_leak, decay=k.a_m, note=k.note + " (NEST only)")


def cell_alif(name: str, prim: P.ALIF, dt: float, scheme: str, n: int, native: bool = False) -> PynnCell:
    """ALIF on PyNN-on-NEST: the nest target's adaptive e-prop neurons as native cell types (netlist.alif_cell;
    weights / 1000 as for eprop_iaf)."""
    if not native:
        raise UnsupportedError(f"node `{name}` (ALIF): PyNN's standard cells have no adaptive threshold; emit with "
                               "simulator=nest (NEST's native adaptive e-prop neurons) or use the nest target")
    why = alif_beyond_eprop(prim)
    if why:
        return cell_native_own(own_neuron(name, prim, dt, scheme, n, why))
    k = alif_cell(name, prim, dt, scheme, n)
    return PynnCell(f"native:{k.model}", k.params, per_neuron(np.asarray(k.weight_scale) * 1e-3, n), v_init=k.v_init,
                    v_offset=k.v_leak, decay=per_neuron(k.a, n),
                    self_weight=None if k.self_weight is None else k.self_weight * 1e-3, note=k.note + " (NEST only)")


def cell_current_alif(name: str, fused: CurrentAlif, prim: P.ALIF, dt: float, scheme: str, n: int,
                      native: bool = False) -> PynnCell:
    """An ALIF behind its synaptic current (Norse's LSNNCell, netlist.fuse_current_alifs) on PyNN-on-NEST, the
    nest target's cell as a native cell type: gif_psc_exp for reset none (weights / 1000), n3ml's own NEST cell
    for reset to v_reset."""
    if not native:
        raise UnsupportedError(f"node `{name}` (ALIF) behind its synaptic current `{fused.syn}` (LI): PyNN's "
                               "standard cells have no adaptive threshold; emit with simulator=nest (NEST's native "
                               "gif_psc_exp, or n3ml's own NEST cell for reset to v_reset) or use the nest target")
    if prim.reset != "none" or prim.refractory > 0:
        return cell_native_own(own_current_alif(name, fused, prim, dt, scheme, n))
    k = current_alif_cell(name, fused, prim, dt, scheme, n)
    return PynnCell("native:gif_psc_exp", k.params, per_neuron(np.asarray(k.weight_scale) * 1e-3, n),
                    v_init=k.v_init, v_offset=k.v_leak, decay=k.a_m, note=k.note + " (NEST only)")


def cell_native_own(k: OwnCell, record: str = "spikes") -> PynnCell:
    """n3ml's own NEST cell (n3ml_cell.cpp, compiled and installed by the program) as a native cell type: weights
    in IR units / 1000 (PyNN scales native weights by 1000), no extra step; a native cell records NEST's V_m."""
    return PynnCell(f"native:{OWN_CELL}", dict(k.params), 1e-3, v_init=k.v_init, v_offset=k.v_leak, decay=k.a_m,
                    record=record, note=k.note + " (NEST only)")


def cell_readout(name: str, prim, dt: float, scheme: str, n: int, native: bool = False) -> PynnCell:
    a, c, vl, tau = membrane_factors(name, prim, dt, scheme, n)
    params = {"v_rest": 0.0, "cm": 1.0, "tau_m": per_neuron(tau, n), "v_thresh": np.inf, "v_reset": 0.0,
              "tau_refrac": 0.0, "i_offset": 0.0}
    return PynnCell("IF_curr_delta", params, per_neuron(c, n), v_init=per_neuron(np.asarray(prim.v_init) - vl, n),
                    v_offset=vl, record="v", decay=per_neuron(a, n), note=f"{prim.op} (non-spiking), v recorded")


def cell_li_chain(name: str, first: P.LI, second: P.LI, dt: float, n: int, scheme: str) -> PynnCell:
    """LI -> LI (fused by netlist.fuse_li_chains): an IF_curr_exp that never fires, v recorded."""
    k = li_chain_cell(name, first, second, dt, scheme, n, "IF_curr_exp")
    params = {"v_rest": 0.0, "cm": 1.0, "tau_m": k.tau_m, "tau_syn_E": k.tau_s, "tau_syn_I": k.tau_s,
              "v_thresh": np.inf, "v_reset": 0.0, "tau_refrac": 0.0, "i_offset": 0.0}
    return PynnCell("IF_curr_exp", params, k.weight_scale, extra_steps=1, v_init=k.v_init, v_offset=k.v_leak,
                    record="v", decay=k.a_m, note="LI -> LI, the first LI as the exponential current, v recorded")


def cell_value(dt: float) -> PynnCell:
    """A value readout (netlist._record): an IF_curr_delta whose v is the summed input of the step."""
    params = {"v_rest": 0.0, "cm": 1.0, "tau_m": dt * VALUE_TAU_PER_DT, "v_thresh": np.inf, "v_reset": 0.0,
              "tau_refrac": 0.0, "i_offset": 0.0}
    return PynnCell("IF_curr_delta", params, 1.0, record="v", decay=0.0,
                    note="synapse value of an Output, v recorded (the membrane forgets within one step)")


CELLS: dict[type, Callable[..., PynnCell]] = {
    P.IF: cell_delta,
    P.LIF: cell_delta,
    P.CubaLIF: cell_cuba,
    P.ALIF: cell_alif,
    P.LI: cell_readout,
    P.Integrator: cell_readout,
}


def lower_ir_to_pynn(graph: Graph, simulator: str = "spiNNaker") -> PynnNetwork:
    """Lower a graph to PyNN populations and projections (UnsupportedError before anything is written).

    With simulator="nest", reset by subtraction uses NEST's native `eprop_iaf` (the script then runs on
    NEST only); otherwise standard cells only.
    """
    graph = spike_maxpool_as_or(graph)
    graph, chains = fuse_li_chains(graph)
    graph, jumps = fuse_synaptic_reset(graph)
    if jumps and simulator != "nest":
        raise UnsupportedError(f"node `{next(iter(jumps))}` (LIF after an LI, with its own spikes one step late: "
                               "snnTorch's Synaptic, reset by subtraction): PyNN's standard exponential-current "
                               "cell (IF_curr_exp) resets to v_reset only; emit with simulator=nest (NEST's native "
                               "gif_psc_exp, the reset as threshold adaptation) or use the nest target")
    graph, alifs = fuse_current_alifs(graph)
    types = graph.verify()
    readers = filter_readers(graph)
    if readers and simulator != "nest":
        name = sorted(readers)[0]
        raise UnsupportedError(f"node `{name}` ({graph.nodes[name].op}) reads a SynapseFilter through synapses: PyNN's "
                               "standard cells and synapses cannot keep a state that decays only in steps without "
                               "its input spike; emit with simulator=nest (n3ml's own NEST cell keeps it in filter "
                               "ports) or use the nest target")
    refuse_fused_filter_readers(readers, chains, jumps, alifs, TARGET)
    cells = {name: cell_current_alif(name, fused, graph.nodes[name], float(graph.dt), graph.scheme,
                                     types[name].size, native=simulator == "nest") for name, fused in alifs.items()}
    cells.update(choose_cells(graph, CELLS, "PyNN standard cell", TARGET, skip=alifs, native=simulator == "nest"))
    for name, first in chains.items():
        cells[name] = cell_li_chain(name, first, graph.nodes[name], float(graph.dt), types[name].size, graph.scheme)
    for name, jump in jumps.items():
        cells[name] = cell_cuba(name, graph.nodes[name], float(graph.dt), graph.scheme, types[name].size, True, jump)
    for name in readers:  # the nest target's construction (its ports are numbered once the synapses are known)
        prim = graph.nodes[name]
        cells[name] = cell_native_own(own_filter_reader(name, prim, float(graph.dt), graph.scheme, types[name].size),
                                      "spikes" if prim.spiking else "V_m")
    fast = (lambda name: cell_native_own(own_cuba(name, graph.nodes[name], float(graph.dt), graph.scheme,
                                                  types[name].size))) if simulator == "nest" else None
    net = lower_with_fast_cells(graph, cells, lambda c: c.extra_steps, fast, generator_latency=SOURCE_LATENCY,
                                target=TARGET)
    filtered = {pr.target for pr in net.projections if pr.filter is not None}
    if filtered and simulator != "nest":  # an Output of a filter (a value readout)
        output = net.populations[sorted(filtered)[0]].value_of
        raise UnsupportedError(f"node `{output}` (Output) reads a SynapseFilter: "
                               "PyNN's standard cells cannot keep its state; emit with simulator=nest (n3ml's own "
                               "NEST cell) or use the nest target")
    cells.update({p.name: cell_native_own(own_value_readout(), "V_m") if p.name in filtered
                  else cell_value(float(graph.dt)) for p in net.neurons if p.value_of})
    for pop in net.inputs:
        if pop.kind == "analog_input" and simulator != "nest":
            raise UnsupportedError(f"node `{pop.name}` (Input, analog) feeds synapses: PyNN's SpikeSourceArray "
                                   f"emits unit spikes and {simulator} has no spike source whose events carry a "
                                   "value; emit with simulator=nest (NEST's native spike_generator with "
                                   "spike_weights), use the nest target, or encode it (PoissonRate, Latency)")
    out = PynnNetwork(net, cells)
    for pop in net.neurons:  # v_init applies at step latency - 1; until then v only decays
        cell = cells[pop.name]
        if np.any(np.asarray(cell.v_init) != 0.0):
            # a membrane with decay 0 forgets v_init within its first step: the IR's v at step 0 does not
            # depend on it, so 0 stands for it (instead of v_init / 0)
            decay = np.broadcast_to(np.asarray(cell.decay, np.float64), (pop.size,))
            v0 = np.broadcast_to(np.asarray(cell.v_init, np.float64), (pop.size,))
            scaled = v0 / np.where(decay == 0.0, 1.0, decay) ** (pop.latency - 1)
            cell.v_init = per_neuron(np.where(decay == 0.0, 0.0, scaled), pop.size)
    _port_projections(out, filtered)
    for pr in net.projections:
        if pr.filter is not None:
            continue
        w = pr.weights.scale_rows(cells[pr.target].weight_scale)
        _split(out, pr.source, pr.target, pr.delay, w.cols, w.rows, w.vals, pr.comment)
    for name, cell in cells.items():
        if cell.self_weight is not None:
            idx = np.arange(net.populations[name].size)
            _split(out, name, name, 1, idx, idx, np.asarray(cell.self_weight),
                   "reset compensation (docs/backends/nest.md)")
    return out


def _port_projections(out: PynnNetwork, filtered: set[str]) -> None:
    """The filter ports of each population in `filtered` (netlist.filter_ports) and the synapses into them, made by
    NEST's own Connect (receptor "port"): weights in IR units, sorted by (pre, post) as `_split`'s lists."""
    for name in sorted(filtered):
        ports = filter_ports(out.netlist, name)
        out.cells[name].params.update(filter_ports=float(ports.ports), filter_leak=ports.leak)
        for pr, pre, post, w, port in ports.synapses:
            order = np.lexsort((post, pre))
            out.projections.append(PynnProjection(pr.source, name, pr.delay, "port", pre[order], post[order], w[order],
                                                  pr.comment, port[order]))


def _split(out: PynnNetwork, source, target, delay, pre, post, w, comment) -> None:
    """PyNN wants non-negative weights on excitatory, negative ones on inhibitory receptors. Each list is
    sorted by (pre, post): sPyNNaker 7.4.1 sizes its synaptic rows from a FromListConnector by splitting
    the list as given at the boundaries of the list sorted by source (from_list_connector.__numpy_group),
    which is right only for a list sorted by source; unsorted, it saw rows of 565 synapses where the
    longest has 153 and refused snnTorch's tutorial network (SynapseRowTooBigException)."""
    order = np.lexsort((post, pre))
    pre, post, w = pre[order], post[order], w[order]
    for receptor, sel in (("excitatory", w > 0), ("inhibitory", w < 0)):
        if np.any(sel):
            out.projections.append(PynnProjection(source, target, delay, receptor, pre[sel].astype(np.int64),
                                                  post[sel].astype(np.int64), w[sel], comment))


def check_spinnaker(net: PynnNetwork, dt: float) -> None:
    """Refuse, naming the node, what sPyNNaker refuses to map onto one SpiNN-5 board; warn about what it
    maps but computes differently (module comment above `SPINNAKER`)."""
    lim = SPINNAKER
    int_bits, frac_bits = lim["fixed_point"]
    largest = 2.0 ** int_bits - 2.0 ** -frac_bits
    sizes = {name: p.size for name, p in net.netlist.populations.items()}
    for pop in net.netlist.neurons:
        cell = net.cells[pop.name]
        if cell.celltype not in lim["models"]:
            raise UnsupportedError(f"node `{pop.name}` ({pop.prim.op}): {cell.note}; sPyNNaker runs "
                                   f"{', '.join(lim['models'])}")
        for k, v in (*cell.params.items(), ("v (initial)", cell.v_init)):
            a = np.abs(np.asarray(v, np.float64))
            if np.any(a > largest):
                why = {"tau_m": " (no leak: SpiNNaker needs a finite tau_m)",
                       "v_thresh": f" ({cell.note}: a neuron that never fires has no SpiNNaker form)"}.get(k, "")
                raise UnsupportedError(f"node `{pop.name}` ({pop.prim.op}): parameter {k} = {np.max(a):g} is "
                                       f"outside sPyNNaker's s{int_bits}.{frac_bits} fixed point (|x| <= "
                                       f"{largest:.10g}){why}")
    for pr in net.projections:
        most = (1 + lim["delay_extension_slots"]) * spinnaker_delay_slots(sizes[pr.target])
        if pr.delay > most:
            raise UnsupportedError(f"node `{pr.target}`: a delay of {pr.delay} steps ({pr.comment}) exceeds the "
                                   f"{most} steps sPyNNaker supports into a population of {sizes[pr.target]} "
                                   "neurons (its cores' delay slots and one delay extension)")
    cores = spinnaker_cores(net)
    if sum(cores.values()) > lim["cores"]:
        biggest = max(net.netlist.neurons, key=lambda p: p.size)
        raise UnsupportedError(f"the network needs {sum(cores.values())} cores at {lim['neurons_per_core']} "
                               f"neurons per core, one SpiNN-5 board has {lim['cores']} for applications; the "
                               f"largest population is `{biggest.name}` ({biggest.size} neurons)")
    _spinnaker_precision(net, dt, largest, 2.0 ** -frac_bits)


def _spinnaker_precision(net: PynnNetwork, dt: float, largest: float, step: float) -> None:
    """Warnings for what sPyNNaker maps without complaint but computes differently from the graph."""
    us = dt * 1000.0 / SPINNAKER["time_step_us"]
    if abs(us - round(us)) > 1e-9 * us:
        log.warning("graph dt = %g ms: sPyNNaker rounds the time step up to a whole microsecond (%g ms)",
                    dt, np.ceil(us) / 1000.0)
    for pr in net.projections:
        a = np.abs(pr.weights)
        if np.any(a > largest):
            log.warning("node `%s`: a weight of %g (%s) saturates the s16.15 input of sPyNNaker's neurons "
                        "(|w| <= %g); sPyNNaker maps it, the result differs", pr.target, a.max(), pr.comment,
                        largest)
        if np.any((a > 0) & (a < step / 2)):
            log.warning("node `%s`: weights as small as %g (%s) round to 0 in sPyNNaker's 16-bit weights "
                        "(resolution at best %g)", pr.target, a[a > 0].min(), pr.comment, step)
