"""Lowering of an IR graph to NEST concepts: neuron models with parameters, generators, delayed connections.

The mapping and every compensation are documented in docs/backends/nest.md. In short, with
`u = v - v_leak` as NEST's membrane variable (E_L = 0, C_m = 1) and `a`, `g` the IR's per-step factors:

* IF/LIF, reset to-value -> `iaf_psc_delta` (exact integration: tau_m = -dt / ln a, weight r g w).
* IF/LIF, reset subtract/none -> `eprop_iaf`, whose reset subtracts V_th in the step of the spike; a
  one-step self-connection of weight a (V_th - rho) makes the subtracted amount exactly the IR's
  rho (theta, or 0 for "none").
* CubaLIF, reset to-value -> `iaf_psc_exp` (tau_syn_ex = tau_syn_in = -dt / ln a_s); NEST integrates
  the current of the previous step exactly, so weights are r g_m w / P21 and the spikes come one step
  later (handled as latency).
* LI / Integrator -> `iaf_psc_delta` that never fires, its V_m recorded.
* LI -> Delay -> ALIF (Norse's LSNNCell) with reset none -> `gif_psc_exp` (netlist.current_alif_cell); with
  reset to v_reset, which no NEST model forms, and a CubaLIF (reset to v_reset) on a loop too short for
  iaf_psc_exp's extra step -> `n3ml_cell`, n3ml's own NEST model (n3ml_cell.cpp, built by the program).
* SynapseFilter (SpikingJelly's) -> kept by the cells it feeds: every neuron (and value readout) reading one
  through synapses is an `n3ml_cell` with one filter port per filtered synapse, connected from the filter's
  spiking source with that port as receptor (netlist.filter_ports).
* Threshold: NEST fires on V_m >= V_th, the IR on v > theta: V_th = nextafter(theta - v_leak, +inf).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ...errors import UnsupportedError
from ...ir import prims as P
from ...ir.graph import Graph
from ..netlist import (OWN_CELL, VALUE_TAU_PER_DT, CurrentAlif, Netlist, OwnCell, Sparse, alif_beyond_eprop,
                       alif_cell, choose_cells, cuba_cell, current_alif_cell, filter_ports, filter_readers,
                       fuse_current_alifs, fuse_li_chains, fuse_synaptic_reset, gif_cell, li_chain_cell,
                       lower_with_fast_cells, membrane_factors, own_cuba, own_current_alif, own_filter_reader,
                       own_neuron, own_value_readout, per_neuron, refuse_fused_filter_readers, spike_maxpool_as_or,
                       strict_threshold, subtraction_compensation)

TARGET = "nest"
TIC_MS = 0.001  # NEST's default time quantum; the resolution must be a multiple of it
DENSE_FRACTION = 0.5  # a projection at least this dense is made with all_to_all and a weight matrix


@dataclass
class Cell:
    """A NEST neuron model standing for one IR neuron node."""

    model: str
    params: dict[str, Any]  # NEST parameters: floats or per-neuron arrays
    weight_scale: Any  # IR input units -> NEST weight, per target neuron
    extra_steps: int = 0  # steps between input arrival and output
    v_init: Any = 0.0  # NEST V_m standing for the IR's v before step 0
    v_offset: Any = 0.0  # IR v = recorded V_m + v_offset
    self_weight: Any = None  # one-step self-connection (reset compensation), per neuron
    record: str = "spikes"  # or "V_m"
    note: str = ""


@dataclass
class Connection:
    """One nest.Connect call: `rule` is "all_to_all" (weights (n_target, n_source)) or "one_to_one" on
    index arrays (pre, post, weights)."""

    source: str
    target: str
    delay: int  # steps
    rule: str
    weights: np.ndarray
    pre: np.ndarray | None = None
    post: np.ndarray | None = None
    comment: str = ""
    receptor: np.ndarray | None = None  # one_to_one into filter ports: the port of each synapse

    @property
    def n_synapses(self) -> int:
        return int(self.weights.size)


@dataclass
class NestNetwork:
    netlist: Netlist
    cells: dict[str, Cell]
    connections: list[Connection] = field(default_factory=list)


def cell_delta(name: str, prim, dt: float, scheme: str, n: int) -> Cell:
    """IF / LIF: iaf_psc_delta for reset to-value, eprop_iaf for subtract / none."""
    a, c, vl, tau = membrane_factors(name, prim, dt, scheme, n)
    vth = per_neuron(strict_threshold(prim.theta, vl), n)
    common = {"E_L": 0.0, "V_m": 0.0, "C_m": 1.0, "tau_m": per_neuron(tau, n), "V_th": vth, "I_e": 0.0}
    v_init = per_neuron(np.asarray(prim.v_init, np.float64) - vl, n)
    if prim.reset == "to-value":
        v_reset = per_neuron(np.asarray(prim.v_reset, np.float64) - vl, n)
        if prim.refractory > 0 and np.any(np.asarray(v_reset) >= np.asarray(vth)):
            raise UnsupportedError(f"node `{name}` ({prim.op}): v_reset is above theta with refractory > 0; "
                                   "NEST fires again during the refractory period where the IR cannot")
        params = {**common, "V_reset": v_reset, "t_ref": prim.refractory * dt}
        return Cell("iaf_psc_delta", params, c, v_init=v_init, v_offset=vl,
                    note=f"{prim.op}, reset to v_reset")
    if prim.refractory > 0:  # NEST's reset-by-subtraction model (eprop_iaf) keeps integrating while refractory
        return cell_own(own_neuron(name, prim, dt, scheme, n, "eprop_iaf integrates while refractory"))
    params = {**common, "t_ref": 0.0, "c_reg": 0.0}
    # eprop_iaf subtracts V_th right after the spike; the IR subtracts rho. The difference enters one
    # step later through a self-connection, decayed by a.
    return Cell("eprop_iaf", params, c, v_init=v_init, v_offset=vl,
                self_weight=subtraction_compensation(prim, vth, a, n),
                note=f"{prim.op}, reset by {'subtraction' if prim.reset == 'subtract' else 'none'}")


def cell_cuba(name: str, prim: P.CubaLIF, dt: float, scheme: str, n: int, jump: Any = None) -> Cell:
    """CubaLIF: iaf_psc_exp for reset to-value, exact up to rounding (the current enters V one step later:
    extra step); gif_psc_exp for reset subtract / none (`cell_gif`)."""
    if prim.reset != "to-value":
        return cell_gif(name, prim, dt, scheme, n, jump)
    k = cuba_cell(name, prim, dt, scheme, n, "iaf_psc_exp")
    params = {"E_L": 0.0, "V_m": 0.0, "C_m": 1.0, "tau_m": k.tau_m, "tau_syn_ex": k.tau_s, "tau_syn_in": k.tau_s,
              "V_th": k.v_th, "V_reset": k.v_reset, "t_ref": prim.refractory * dt, "I_e": 0.0}
    return Cell("iaf_psc_exp", params, k.weight_scale, extra_steps=1, v_init=k.v_init, v_offset=k.v_leak,
                note="CubaLIF, current-based exponential synapse, reset to v_reset")


def cell_gif(name: str, prim: P.CubaLIF, dt: float, scheme: str, n: int, jump: Any = None) -> Cell:
    """CubaLIF with reset subtract / none (snnTorch's Synaptic): NEST's gif_psc_exp, made deterministic and
    reset-free, the reset carried by its threshold adaptation (netlist.gif_cell). V_m is not the IR's v
    (no reset), so such a population records spikes only."""
    if prim.refractory > 0 and jump is None:  # gif_psc_exp clamps V while refractory, the IR holds it
        return cell_own(own_neuron(name, prim, dt, scheme, n, "gif_psc_exp clamps V while refractory"))
    k = gif_cell(name, prim, dt, scheme, n, jump)
    return Cell("gif_psc_exp", {"V_m": 0.0, **k.params}, k.weight_scale, v_init=k.v_init, v_offset=k.v_leak,
                note=k.note)


def cell_alif(name: str, prim: P.ALIF, dt: float, scheme: str, n: int) -> Cell:
    """ALIF: NEST's e-prop neurons with an adaptive threshold (netlist.alif_cell), for inference only
    (static synapses): eprop_iaf_psc_delta_adapt (reset to-value), eprop_iaf_adapt (reset none)."""
    why = alif_beyond_eprop(prim)
    if why:
        return cell_own(own_neuron(name, prim, dt, scheme, n, why))
    k = alif_cell(name, prim, dt, scheme, n)
    return Cell(k.model, {"V_m": 0.0, **k.params}, k.weight_scale, v_init=k.v_init, v_offset=k.v_leak,
                self_weight=k.self_weight, note=k.note)


def cell_own(k: OwnCell, record: str = "spikes") -> Cell:
    """n3ml's own cell (n3ml_cell.cpp, compiled by the program): weights in IR units, no extra step."""
    return Cell(OWN_CELL, {"V_m": 0.0, **k.params}, 1.0, v_init=k.v_init, v_offset=k.v_leak, record=record,
                note=k.note)


def cell_current_alif(name: str, fused: CurrentAlif, prim: P.ALIF, dt: float, scheme: str, n: int) -> Cell:
    """An ALIF behind its synaptic current (Norse's LSNNCell, fused by netlist.fuse_current_alifs): reset none,
    gif_psc_exp with the current and one threshold component (netlist.current_alif_cell); reset to v_reset
    (the LSNN's own), which no NEST model has, n3ml's own cell. Spikes recorded."""
    if prim.reset != "none" or prim.refractory > 0:
        return cell_own(own_current_alif(name, fused, prim, dt, scheme, n))
    k = current_alif_cell(name, fused, prim, dt, scheme, n)
    return Cell("gif_psc_exp", {"V_m": 0.0, **k.params}, k.weight_scale, v_init=k.v_init, v_offset=k.v_leak,
                note=k.note)


def cell_readout(name: str, prim, dt: float, scheme: str, n: int) -> Cell:
    """LI / Integrator: an iaf_psc_delta that never fires; its V_m is the output."""
    a, c, vl, tau = membrane_factors(name, prim, dt, scheme, n)
    params = {"E_L": 0.0, "V_m": 0.0, "C_m": 1.0, "tau_m": per_neuron(tau, n), "V_th": np.inf, "V_reset": 0.0,
              "t_ref": 0.0, "I_e": 0.0}
    return Cell("iaf_psc_delta", params, c, v_init=per_neuron(np.asarray(prim.v_init, np.float64) - vl, n),
                v_offset=vl, record="V_m", note=f"{prim.op} (non-spiking), V_m recorded")


def cell_li_chain(name: str, first: P.LI, second: P.LI, dt: float, n: int, scheme: str) -> Cell:
    """LI -> LI (fused by netlist.fuse_li_chains): an iaf_psc_exp that never fires, V_m recorded."""
    k = li_chain_cell(name, first, second, dt, scheme, n, "iaf_psc_exp")
    params = {"E_L": 0.0, "V_m": 0.0, "C_m": 1.0, "tau_m": k.tau_m, "tau_syn_ex": k.tau_s, "tau_syn_in": k.tau_s,
              "V_th": np.inf, "V_reset": 0.0, "t_ref": 0.0, "I_e": 0.0}
    return Cell("iaf_psc_exp", params, k.weight_scale, extra_steps=1, v_init=k.v_init, v_offset=k.v_leak,
                record="V_m", note="LI -> LI, the first LI as the exponential current, V_m recorded")


def cell_value(dt: float) -> Cell:
    """A value readout (netlist._record): an iaf_psc_delta whose V_m is the summed input of the step."""
    params = {"E_L": 0.0, "V_m": 0.0, "C_m": 1.0, "tau_m": dt * VALUE_TAU_PER_DT, "V_th": np.inf, "V_reset": 0.0,
              "t_ref": 0.0, "I_e": 0.0}
    return Cell("iaf_psc_delta", params, 1.0, record="V_m", note="synapse value of an Output, V_m recorded "
                "(the membrane forgets within one step)")


CELLS: dict[type, Callable[..., Cell]] = {
    P.IF: cell_delta,
    P.LIF: cell_delta,
    P.CubaLIF: cell_cuba,
    P.ALIF: cell_alif,
    P.LI: cell_readout,
    P.Integrator: cell_readout,
}


def lower_ir_to_nest(graph: Graph) -> NestNetwork:
    """Lower a graph to NEST populations and connections (raises UnsupportedError before any output)."""
    ticks = float(graph.dt) / TIC_MS
    if abs(ticks - round(ticks)) > 1e-9 * max(ticks, 1.0) or round(ticks) < 1:
        raise UnsupportedError(f"graph dt = {graph.dt} ms is not a multiple of NEST's tic ({TIC_MS} ms); "
                               "NEST's resolution must be")
    graph = spike_maxpool_as_or(graph)
    graph, chains = fuse_li_chains(graph)
    graph, jumps = fuse_synaptic_reset(graph)
    graph, alifs = fuse_current_alifs(graph)
    types = graph.verify()
    readers = filter_readers(graph)
    refuse_fused_filter_readers(readers, chains, jumps, alifs, TARGET)
    cells = {name: cell_current_alif(name, fused, graph.nodes[name], float(graph.dt), graph.scheme, types[name].size)
             for name, fused in alifs.items()}
    cells.update(choose_cells(graph, CELLS, "NEST model", TARGET, skip=alifs))
    for name, first in chains.items():
        cells[name] = cell_li_chain(name, first, graph.nodes[name], float(graph.dt), types[name].size, graph.scheme)
    for name, jump in jumps.items():
        cells[name] = cell_cuba(name, graph.nodes[name], float(graph.dt), graph.scheme, types[name].size, jump)
    for name in readers:  # the cell keeps the filter states (its ports are numbered once the synapses are known)
        prim = graph.nodes[name]
        cells[name] = cell_own(own_filter_reader(name, prim, float(graph.dt), graph.scheme, types[name].size),
                               "spikes" if prim.spiking else "V_m")
    net = lower_with_fast_cells(graph, cells, lambda c: c.extra_steps, lambda name: cell_own(own_cuba(
        name, graph.nodes[name], float(graph.dt), graph.scheme, types[name].size)), target=TARGET)
    filtered = {pr.target for pr in net.projections if pr.filter is not None}
    cells.update({p.name: cell_own(own_value_readout(), "V_m") if p.name in filtered else cell_value(float(graph.dt))
                  for p in net.neurons if p.value_of})
    out = NestNetwork(net, cells)
    for name in sorted(filtered):
        ports = filter_ports(net, name)
        cells[name].params.update(filter_ports=float(ports.ports), filter_leak=ports.leak)
        for pr, pre, post, w, port in ports.synapses:
            out.connections.append(Connection(pr.source, name, pr.delay, "one_to_one", w, pre, post, pr.comment,
                                              receptor=port))
    for pr in net.projections:
        if pr.filter is not None:
            continue
        cell = cells[pr.target]
        w = pr.weights.scale_rows(cell.weight_scale) if not np.isscalar(cell.weight_scale) or \
            cell.weight_scale != 1.0 else pr.weights
        keep = w.vals != 0.0
        if not np.any(keep):
            continue
        out.connections.append(_connection(pr.source, pr.target, pr.delay, w, keep, pr.comment))
    for name, cell in cells.items():
        if cell.self_weight is not None:
            n = net.populations[name].size
            idx = np.arange(n)
            out.connections.append(Connection(name, name, 1, "one_to_one", np.asarray(cell.self_weight),
                                              idx, idx, "reset compensation (see docs/backends/nest.md)"))
    return out


def _connection(src: str, dst: str, delay: int, w: Sparse, keep: np.ndarray, comment: str) -> Connection:
    n_dst, n_src = w.shape
    if w.nnz >= DENSE_FRACTION * n_dst * n_src:
        return Connection(src, dst, delay, "all_to_all", w.dense(), comment=comment)
    return Connection(src, dst, delay, "one_to_one", w.vals[keep], w.cols[keep].astype(np.int64),
                      w.rows[keep].astype(np.int64), comment)
