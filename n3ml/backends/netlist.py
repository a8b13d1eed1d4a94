"""Lowering of an IR graph to a netlist: populations of point neurons joined by delayed projections.

Simulators of spiking networks (NEST, PyNN, SpiNNaker) know neurons, spike sources and synapses, not
the IR's stateless operations. `lower_ir_to_netlist` folds every chain of linear operations (Dense,
Conv, pools, Flatten, Scale, Add, Concat, ConstantCurrent, Delay) that ends at a neuron's input into
projections `source population -> neuron population` with one sparse weight matrix and one IR delay
each, plus a "clock" source (value 1 at every step) that carries the biases.

It also solves the timing. The IR delivers a spike in the step it is emitted (docs/semantics.md §2);
these simulators deliver it at the earliest one step later. Each population therefore runs `latency`
steps behind the IR (IR step t is simulator step t + latency), and a projection gets the simulator delay
`arrival(target) - latency(source) + ir_delay >= 1`. A loop whose IR delays are too short for that
(a neuron feeding itself without a Delay, or a synaptic-current neuron in a one-step loop) is refused.

The netlist is target-neutral (weights in IR units); each backend maps neuron primitives to its
cell models, scales the weights and writes the network as data (the tables below); the program that
runs it is a runtime module copied verbatim.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Collection, NamedTuple

import numpy as np

from ..errors import UnsupportedError
from ..ir import neurons as N
from ..ir import prims as P
from ..ir.graph import Edge, Graph, li_chains
from .emission import Arrays

CLOCK = "clock"  # name of the bias source: value 1 at every step t >= 0

# Where a source's spikes appear, in simulator steps after the IR step (fixed, not solved): generators
# emit the value of IR step t at simulator time t + 1; spike inputs are relayed by parrot neurons one
# step later.
GENERATOR_LATENCY = 1
PARROT_LATENCY = 2


@dataclass(frozen=True)
class Sparse:
    """A (rows x cols) matrix in coordinate form, entries unique."""

    rows: np.ndarray
    cols: np.ndarray
    vals: np.ndarray
    shape: tuple[int, int]

    @staticmethod
    def eye(n: int) -> Sparse:
        i = np.arange(n)
        return Sparse(i, i, np.ones(n), (n, n))

    @staticmethod
    def from_dense(w: np.ndarray) -> Sparse:
        r, c = np.indices(w.shape)
        return Sparse(r.ravel(), c.ravel(), np.asarray(w, np.float64).ravel(), tuple(w.shape))

    @property
    def nnz(self) -> int:
        return int(self.vals.size)

    def is_identity(self) -> bool:
        n, m = self.shape
        return (n == m and self.nnz == n and np.array_equal(self.rows, np.arange(n))
                and np.array_equal(self.cols, np.arange(n)) and np.all(self.vals == 1.0))

    def dense(self) -> np.ndarray:
        w = np.zeros(self.shape)
        np.add.at(w, (self.rows, self.cols), self.vals)
        return w

    def scale_rows(self, s: np.ndarray | float) -> Sparse:
        s = np.broadcast_to(np.asarray(s, np.float64), (self.shape[0],))
        return Sparse(self.rows, self.cols, self.vals * s[self.rows], self.shape)

    def plus(self, other: Sparse) -> Sparse:
        return _coalesce(np.concatenate([self.rows, other.rows]), np.concatenate([self.cols, other.cols]),
                         np.concatenate([self.vals, other.vals]), self.shape)

    def __matmul__(self, other: Sparse) -> Sparse:
        """self (m x k) @ other (k x n): join self's columns with other's rows."""
        if other.is_identity():
            return self
        if self.is_identity():
            return other
        order = np.argsort(other.rows, kind="stable")
        b_rows, b_cols, b_vals = other.rows[order], other.cols[order], other.vals[order]
        count = np.bincount(b_rows, minlength=other.shape[0])
        start = np.concatenate([[0], np.cumsum(count)[:-1]])
        reps = count[self.cols]
        total = int(reps.sum())
        first = np.repeat(start[self.cols], reps)
        within = np.arange(total) - np.repeat(np.cumsum(reps) - reps, reps)
        idx = first + within
        return _coalesce(np.repeat(self.rows, reps), b_cols[idx], np.repeat(self.vals, reps) * b_vals[idx],
                         (self.shape[0], other.shape[1]))


def _coalesce(rows, cols, vals, shape) -> Sparse:
    key = rows.astype(np.int64) * shape[1] + cols
    uniq, inv = np.unique(key, return_inverse=True)
    summed = np.bincount(inv, weights=vals, minlength=uniq.size)
    return Sparse(uniq // shape[1], uniq % shape[1], summed, shape)


@dataclass
class Population:
    """One IR node that becomes simulator neurons or a spike/current source.

    kind: "spike_input" (relayed by parrots), "analog_input" (per-step weighted events), "clock",
    or "neuron". `arrival` is the simulator step at which inputs of IR step 0 arrive, `latency` the one
    at which its output of IR step 0 appears (`arrival + extra`, extra = 1 for synaptic-current cells).
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    prim: P.Primitive | None = None
    arrival: int = 0
    latency: int = 0
    source: str | None = None  # inputs: the Input node whose data feeds it
    encoder: dict | None = None  # inputs: {"type": "poisson"|"latency", ...}, applied by the program
    value_of: str | None = None  # a value readout: the Output whose synapse value it records (see _record)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass(frozen=True, eq=False)
class FilterGroup:
    """The elements of a SynapseFilter node that read one spiking population through `delay` IR steps:
    element e filters the spikes of neuron `cols[e]` of `source` with `leak[e]` (docs/semantics.md §5b).

    No simulator synapse carries a filter's state (it decays only in steps without its input spike), so a
    projection out of a filter connects the source's spikes to filter ports of the receiving cell, which keeps
    one filter state per port (n3ml's own NEST cell, `filter_ports`)."""

    node: str  # the SynapseFilter node
    source: str  # the spiking population it reads
    delay: int  # IR Delay steps between the source and the filter
    cols: np.ndarray  # source neuron of each element
    leak: np.ndarray  # leak of each element


@dataclass
class Projection:
    """Synapses source -> target: weights (target x source) in IR units, `ir_delay` steps of IR Delay.
    Through a SynapseFilter (`filter`): weights (target x filter elements), each element a source neuron
    (`filter.cols`) whose spikes reach a filter port of the target (`filter_ports`)."""

    source: str
    target: str
    ir_delay: int
    weights: Sparse
    via: tuple[str, ...]  # IR nodes folded into this projection, for comments
    delay: int = 0  # simulator delay in steps, solved
    filter: FilterGroup | None = None

    @property
    def comment(self) -> str:
        """What it carries, for the description's notes: "synapses of fc, d, IR Delay 2" or "bias of fc"."""
        what = "bias" if self.source == CLOCK else "synapses"
        via = ", ".join(self.via)
        return (f"{what} of {via}" if via else what) + (f", IR Delay {self.ir_delay}" if self.ir_delay else "") + \
            (f", spikes to filter ports (SynapseFilter `{self.filter.node}`)" if self.filter else "")


@dataclass
class RecordPart:
    """Output entries `rows` are the neurons `cols` of population `source`, `shift` IR steps late."""

    source: str
    rows: np.ndarray
    cols: np.ndarray
    shift: int  # IR Delay steps between the source and the Output


@dataclass
class Record:
    """An Output node: its entries are recorded neurons (through Flatten, Concat, Delay)."""

    name: str
    parts: list[RecordPart]
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class Netlist:
    name: str
    dt: float
    scheme: str
    populations: dict[str, Population] = field(default_factory=dict)
    projections: list[Projection] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    data: dict[str, tuple[str, tuple[int, ...]]] = field(default_factory=dict)  # Input node -> (kind, shape)
    filters: dict[str, FilterGroup] = field(default_factory=dict)  # term source keys standing for filter elements

    @property
    def inputs(self) -> list[Population]:
        return [p for p in self.populations.values() if p.kind in ("spike_input", "analog_input")]

    @property
    def neurons(self) -> list[Population]:
        return [p for p in self.populations.values() if p.kind == "neuron"]

    def projections_to(self, target: str) -> list[Projection]:
        return [p for p in self.projections if p.target == target]

    @property
    def horizon(self) -> int:
        """Extra simulator steps needed beyond T for every record to cover IR steps 0..T-1."""
        return max((self.populations[p.source].latency for r in self.records for p in r.parts), default=0)


# ------------------------------------------------ exact integration of the cells

# tau_m standing for "no leak": exp(-dt / 1e300) is exactly 1.0 for any dt, and the models' current
# propagators stay finite (tau_m = inf gives NaN in NEST's iaf_psc_delta).
NO_LEAK_TAU = 1e300

# tau_m of a value readout, per ms of dt: exp(-dt / tau) = exp(-1000) is 0.0 in float64, so the cell's V
# holds only the input of the current step (see `_record`)
VALUE_TAU_PER_DT = 1e-3


def tau_from_factor(name: str, field_: str, a, dt: float):
    """The time constant whose exact decay over dt is the IR's per-step factor a (a = 1: no leak).

    Lets a simulator that integrates exactly (NEST, PyNN's standard cells) reproduce both of the IR's
    schemes: for `euler`, a = 1 - dt / tau gives tau' = -dt / ln(1 - dt / tau).
    """
    a = np.asarray(a, np.float64)
    if np.any(a < 0) or np.any(a > 1):
        raise UnsupportedError(f"node `{name}`: the per-step decay of `{field_}` is {a.min()} (euler scheme "
                               "with dt > tau); exact integration needs 0 <= decay <= 1")
    # a = 0 (euler with tau = dt: snnTorch's beta = 0, the membrane restarted every step): tau = dt / 1000,
    # whose exact decay exp(-1000) is 0.0 in float64, so the cell forgets its voltage within the step
    inner = (a > 0.0) & (a < 1.0)
    with np.errstate(divide="ignore"):
        tau = np.where(a == 1.0, NO_LEAK_TAU, np.where(a == 0.0, dt * VALUE_TAU_PER_DT,
                                                       N.tau_of_decay(np.where(inner, a, 0.5), dt, "exact")))
    return float(tau) if tau.ndim == 0 else tau


def strict_threshold(theta, v_leak):
    """Simulators fire on V >= V_th, the IR on v > theta: the next float above theta - v_leak."""
    return np.nextafter(np.asarray(theta, np.float64) - v_leak, np.inf)


def exp_current_gain(tau_m, tau_s, a_m, a_s, dt: float):
    """Voltage change over one step caused by a unit current decaying with tau_s (C = 1): NEST's P21."""
    tau_m, tau_s = np.asarray(tau_m, np.float64), np.asarray(tau_s, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.isclose(tau_m, tau_s, rtol=1e-12), dt * np.asarray(a_m),
                        tau_m * tau_s * (np.asarray(a_s) - np.asarray(a_m)) / (tau_s - tau_m))


def per_neuron(x, n: int):
    """A parameter for a cell table: one float if uniform, else a flat copy (one value per neuron, n)."""
    a = np.asarray(x, np.float64)
    return float(a.reshape(-1)[0]) if a.size == 1 else a.reshape(-1).copy()


def membrane_factors(name: str, prim, dt: float, scheme: str, n: int):
    """(a, c, v_leak, tau_m) of an IF / LIF / LI / Integrator membrane for a cell integrating exactly:
    the per-step decay a, the input gain c (r g; r for Integrator; 1 for IF), v_leak and the tau_m
    whose exact decay is a (NO_LEAK_TAU for a = 1)."""
    k = N.discretize(prim, dt, scheme)
    if k.a is None:  # IF, Integrator: no leak
        return 1.0, 1.0 if k.rg is None else per_neuron(k.rg, n), 0.0, NO_LEAK_TAU
    return k.a, per_neuron(k.rg, n), per_neuron(k.v_leak, n), tau_from_factor(name, "tau", k.a, dt)


def subtraction_compensation(prim, v_th, a, n: int):
    """Weights (n,) of the one-step self-connection that lets a cell resetting by V_th right after the
    spike (NEST's eprop_iaf) subtract the IR's rho instead (theta for reset "subtract", 0 for "none"):
    the difference V_th - rho, decayed by a over the step; None where it is 0 up to rounding."""
    rho = np.asarray(prim.theta, np.float64) if prim.reset == "subtract" else 0.0
    v_th = np.asarray(v_th, np.float64)
    diff = v_th - rho
    tol = 4 * np.spacing(np.maximum(np.abs(v_th), 1.0))
    return None if np.all(np.abs(diff) <= tol) else np.broadcast_to(a * diff, (n,)).astype(np.float64)


def _check_current_decay(name: str, op: str, a_s, model: str) -> None:
    """A current that decays to 0 within one step has no exact exponential-current form: NEST's propagator
    (libnestutil/iaf_propagator.cpp) forms exp(-h / tau_syn) expm1(...) = 0 * inf there and falls back to
    its tau_syn = tau_m formula, so V would take the wrong share of the current."""
    if np.any(np.asarray(a_s) == 0.0):
        raise UnsupportedError(f"node `{name}` ({op}): the synaptic current's per-step decay is 0 (it lasts one "
                               f"step); {model}'s propagator is not exact there (NEST evaluates it as 0 * inf and "
                               "falls back to the equal-time-constant form)")


class CubaCell(NamedTuple):
    """A CubaLIF as an exponential-current cell integrating exactly (V in units of v - v_leak, C = 1),
    every field a float or one value per neuron."""

    tau_m: Any
    tau_s: Any
    a_m: Any  # per-step membrane decay
    v_th: Any
    v_reset: Any
    v_init: Any
    v_leak: Any
    weight_scale: Any  # r g_m / P21: the current of the previous step enters V exactly


def cuba_cell(name: str, prim: P.CubaLIF, dt: float, scheme: str, n: int, model: str) -> CubaCell:
    """The constants of `model` (iaf_psc_exp, IF_curr_exp) standing for a CubaLIF with reset to-value.

    Raises:
        UnsupportedError naming the node when a decay factor is 1 (no finite tau) or v_reset is above
        theta with refractory > 0.
    """
    k = N.discretize(prim, dt, scheme)
    a_m, a_s = np.asarray(k.a, np.float64), np.asarray(k.a_s, np.float64)
    tau_m = np.asarray(tau_from_factor(name, "tau_mem", a_m, dt))
    tau_s = np.asarray(tau_from_factor(name, "tau_syn", a_s, dt))
    if np.any(tau_m == NO_LEAK_TAU) or np.any(tau_s == NO_LEAK_TAU):
        raise UnsupportedError(f"node `{name}` (CubaLIF): a decay factor of 1 has no {model} equivalent")
    _check_current_decay(name, "CubaLIF", a_s, model)
    vl = per_neuron(prim.v_leak, n)
    c = k.rg
    p21 = exp_current_gain(tau_m, tau_s, a_m, a_s, dt)
    vth = strict_threshold(prim.theta, vl)
    v_reset = np.asarray(prim.v_reset, np.float64) - vl
    if prim.refractory > 0 and np.any(v_reset >= vth):
        raise UnsupportedError(f"node `{name}` (CubaLIF): v_reset is above theta with refractory > 0")
    return CubaCell(per_neuron(tau_m, n), per_neuron(tau_s, n), per_neuron(a_m, n), per_neuron(vth, n),
                    per_neuron(v_reset, n), per_neuron(np.asarray(prim.v_init, np.float64) - vl, n), vl,
                    per_neuron(c / p21, n))


def fuse_li_chains(graph: Graph) -> tuple[Graph, dict[str, P.LI]]:
    """LI1 -> LI2, LI1 feeding only LI2 with v_leak = v_init = 0 (a pure filter: Norse's LICell), becomes
    LI2 reading LI1's input; returns the graph and {LI2: LI1}. The pair is one exponential-current cell
    (`li_chain_cell`): LI1 is its current, LI2 its membrane."""
    pairs = li_chains(graph)
    g = graph.copy() if pairs else graph
    for name, src in pairs.items():
        (before,) = g.inputs_of(src)
        g.edges = [Edge(before, name, 0) if e.dst == name else e for e in g.edges if e.dst != src]
        del g.nodes[src]
    if pairs:
        g.verify()
    return g, {name: graph.nodes[src] for name, src in pairs.items()}


# gif_psc_exp fires with probability 1 - exp(-lambda_0 exp((V - V_T) / Delta_V) dt): with Delta_V this small
# any V above V_T gives exp(+inf) (certain spike) and any V below it exp(-inf) = 0 (never); at V = V_T
# exactly the chance is lambda_0 dt, about 1e-290 (the IR's test is strict: no spike).
GIF_DELTA_V = 1e-300
GIF_LAMBDA_0 = 1e-290


class GifCell(NamedTuple):
    """NEST's gif_psc_exp standing for a CubaLIF with reset subtract / none (NEST parameter names; lists of
    threshold components as (n, k) arrays)."""

    params: dict[str, Any]
    weight_scale: Any  # r g_m C_m / P21 (pA, C_m in pF)
    v_init: Any
    v_leak: Any
    a_m: Any
    note: str


def gif_cell(name: str, prim: P.CubaLIF, dt: float, scheme: str, n: int, jump: Any = None) -> GifCell:
    """The constants of NEST's gif_psc_exp for a CubaLIF with reset by subtraction or none.

    With t_ref = 0 gif_psc_exp never resets V, and its current enters V in the step it arrives (as in the
    IR: no extra step; weight r g_m w C_m / P21 with C_m = tau_m, g_L = 1, so that NEST's tau_m is exactly
    tau_m). A reset by subtraction of theta lowers v by theta a_m^k k steps later, for a linear membrane
    the same as raising the threshold by that much: the threshold's adaptation (q_sfa, decaying with
    tau_sfa = tau_m, entering undecayed one step after the spike) carries it, q = theta a_m. `jump` (from
    `fuse_synaptic_reset`: the neuron's own spikes added to its membrane one step later, snnTorch's reset
    term) lowers the threshold instead: q = theta a_m - jump.

    Raises:
        UnsupportedError naming the node for refractory > 0 (gif_psc_exp clamps V while refractory).
    """
    if prim.refractory > 0:
        raise UnsupportedError(f"node `{name}` (CubaLIF): reset '{prim.reset}' with refractory={prim.refractory}; "
                               "NEST's exponential-current cell without reset (gif_psc_exp) clamps V while "
                               "refractory, the IR holds v. Use refractory 0 or reset 'to-value'")
    k = cuba_cell(name, prim, dt, scheme, n, "gif_psc_exp")
    tau_m, a_m = np.asarray(k.tau_m, np.float64), np.asarray(k.a_m, np.float64)
    q = (np.asarray(prim.theta, np.float64) * a_m if prim.reset == "subtract" else 0.0) - \
        (0.0 if jump is None else np.asarray(jump, np.float64))
    q = np.broadcast_to(q, (n,)).astype(np.float64)
    params = {"E_L": 0.0, "C_m": k.tau_m, "g_L": 1.0, "tau_syn_ex": k.tau_s, "tau_syn_in": k.tau_s,
              "V_T_star": per_neuron(np.asarray(prim.theta, np.float64) - np.asarray(k.v_leak), n),
              "V_reset": 0.0, "t_ref": 0.0, "I_e": 0.0, "Delta_V": GIF_DELTA_V, "lambda_0": GIF_LAMBDA_0,
              "q_stc": np.zeros((n, 0)), "tau_stc": np.zeros((n, 0))}
    if np.any(q != 0.0):  # one threshold component per neuron: (n, 1) arrays (list-valued NEST parameters)
        params.update(q_sfa=q.reshape(n, 1), tau_sfa=np.broadcast_to(tau_m, (n,)).reshape(n, 1).copy())
    else:
        params.update(q_sfa=np.zeros((n, 0)), tau_sfa=np.zeros((n, 0)))
    note = (f"CubaLIF, reset by {'subtraction' if prim.reset == 'subtract' else 'none'} as a threshold adaptation "
            "(gif_psc_exp, deterministic, no reset)" + (", own spikes one step late folded into it"
                                                          if jump is not None else ""))
    return GifCell(params, per_neuron(np.asarray(k.weight_scale, np.float64) * tau_m, n), k.v_init, k.v_leak,
                   k.a_m, note)


class AlifCell(NamedTuple):
    """NEST's adaptive e-prop neuron standing for an ALIF (NEST parameter names, V in units of v - v_leak)."""

    model: str
    params: dict[str, Any]
    weight_scale: Any  # r g: the jump of V per unit of input
    v_init: Any
    v_leak: Any
    a: Any  # per-step membrane decay
    self_weight: Any  # one-step self-connection undoing eprop_iaf_adapt's subtraction of V_th (reset none)
    note: str


def alif_beyond_eprop(prim: P.ALIF) -> str:
    """Why NEST's adaptive e-prop neurons cannot stand for `prim` ("" if they can; the targets then use n3ml's
    own cell): reset 'subtract' removes theta + b', a product of the spike and the adaptation; NEST freezes the
    adaptation while refractory, the IR keeps decaying it; adapt_beta must be >= 0."""
    if prim.reset == "subtract":
        return "reset 'subtract' removes theta + b', which NEST's adaptive neurons cannot"
    if prim.refractory > 0:
        return "NEST's adaptive neurons freeze the adaptation while refractory"
    if np.any(np.asarray(prim.q) < 0):
        return "NEST's adapt_beta must be >= 0"
    return ""


def alif_cell(name: str, prim: P.ALIF, dt: float, scheme: str, n: int) -> AlifCell:
    """The constants of NEST's e-prop neurons with an adaptive threshold for an ALIF.

    Both update `adapt = P_adapt adapt + z` (z: the spike of the previous step) and test
    `V_m >= V_th + adapt_beta adapt`; the IR's b' = a_b (b' + q s) of the previous step is that with
    P_adapt = a_b and adapt_beta = q a_b. `eprop_iaf_psc_delta_adapt` resets to V_reset (reset to-value);
    `eprop_iaf_adapt` subtracts V_th, which the one-step self-connection of `eprop_iaf` undoes (reset
    none).

    Raises:
        UnsupportedError naming the node for reset "subtract" (the IR removes theta + b', a product of the
        spike and the adaptation), refractory > 0 (NEST freezes the adaptation while refractory, the IR
        keeps decaying it), q < 0, or v_reset not below theta.
    """
    if prim.refractory > 0:
        raise UnsupportedError(f"node `{name}` (ALIF): refractory={prim.refractory}; NEST's adaptive e-prop "
                               "neurons freeze the threshold adaptation while refractory, the IR keeps decaying it")
    if prim.reset == "subtract":
        raise UnsupportedError(f"node `{name}` (ALIF): reset 'subtract' removes theta + b' (the adaptation at the "
                               "spike): NEST's adaptive neurons subtract V_th or reset to V_reset only. Use reset "
                               "'to-value' or 'none'")
    k = N.discretize(prim, dt, scheme)
    a, c, vl, tau = membrane_factors(name, prim, dt, scheme, n)
    q = np.broadcast_to(np.asarray(prim.q, np.float64), (n,))
    if np.any(q < 0):
        raise UnsupportedError(f"node `{name}` (ALIF): a negative threshold jump q; NEST's adapt_beta must be >= 0")
    vth = per_neuron(strict_threshold(prim.theta, vl), n)
    params = {"E_L": 0.0, "C_m": 1.0, "tau_m": per_neuron(tau, n), "V_th": vth, "I_e": 0.0, "t_ref": 0.0,
              "c_reg": 0.0, "adapt_tau": per_neuron(tau_from_factor(name, "tau_adapt", k.a_b, dt), n),
              "adapt_beta": per_neuron(q * np.asarray(k.a_b, np.float64), n)}
    v_init = per_neuron(np.asarray(prim.v_init, np.float64) - vl, n)
    if prim.reset == "to-value":
        v_reset = per_neuron(np.asarray(prim.v_reset, np.float64) - vl, n)
        if np.any(np.asarray(v_reset) >= np.asarray(vth)):
            raise UnsupportedError(f"node `{name}` (ALIF): v_reset is not below theta (NEST requires V_reset < V_th)")
        return AlifCell("eprop_iaf_psc_delta_adapt", {**params, "V_reset": v_reset}, c, v_init, vl, a, None,
                        "ALIF, reset to v_reset (adaptive threshold)")
    return AlifCell("eprop_iaf_adapt", params, c, v_init, vl, a, subtraction_compensation(prim, vth, a, n),
                    "ALIF, reset none (adaptive threshold)")


class CurrentAlif(NamedTuple):
    """Norse's LSNNCell as traced: the ALIF's synaptic current `syn` (an LI), reached through `delay` steps."""

    syn: str  # the LI's node name (for messages)
    li: P.LI
    delay: int


def fuse_current_alifs(graph: Graph) -> tuple[Graph, dict[str, CurrentAlif]]:
    """LI -> [Delay(d)] -> ALIF, the LI (v_leak = v_init = 0) and the Delay each feeding only the next node
    (Norse's LSNNCell: `v` integrates the current of the previous step), becomes the ALIF reading
    Delay(d) of the LI's input; returns the graph and {ALIF: CurrentAlif}. A Delay commutes with a linear
    filter whose state starts at 0 (both give 0 for the first d steps), so the pair is one cell with an
    exponential current whose inputs arrive d steps late (`current_alif_cell`)."""
    found: dict[str, tuple[str, str | None]] = {}
    for name, p in graph.nodes.items():
        if type(p) is not P.ALIF:
            continue
        (src,) = graph.inputs_of(name)
        delay = src if type(graph.nodes[src]) is P.Delay and graph.users_of(src) == [name] else None
        syn = graph.inputs_of(delay)[0] if delay else src
        q = graph.nodes[syn]
        if (type(q) is P.LI and graph.users_of(syn) == [delay or name] and not np.any(np.asarray(q.v_leak))
                and not np.any(np.asarray(q.v_init))):
            found[name] = (syn, delay)
    if not found:
        return graph, {}
    g = graph.copy()
    fused = {}
    for name, (syn, delay) in found.items():
        (before,) = graph.inputs_of(syn)
        reader = delay or name
        g.edges = [Edge(before, reader, 0) if e.dst == reader else e for e in g.edges if e.dst != syn]
        del g.nodes[syn]
        fused[name] = CurrentAlif(syn, graph.nodes[syn], graph.nodes[delay].steps if delay else 0)
    g.verify()
    return g, fused


def current_alif_cell(name: str, fused: CurrentAlif, prim: P.ALIF, dt: float, scheme: str, n: int) -> GifCell:
    """The constants of NEST's gif_psc_exp for an ALIF behind its synaptic current (`fuse_current_alifs`),
    reset none: the pair is a CubaLIF (tau_syn = the LI's tau, r = r c_LI) whose threshold adapts.
    gif_psc_exp tests V against V_T_star + E, E the sum of its threshold components read before they decay,
    and adds q_sfa to them after a spike: E_t = P E_{t-1} + q_sfa s_{t-1}; the IR's b'_t = a_b (b'_{t-1} +
    q s_{t-1}), so one component with tau_sfa = -dt / ln a_b and q_sfa = q a_b is b' (exact; any sign of q).

    Raises:
        UnsupportedError naming the ALIF and the LI for reset 'to-value' (Norse's LSNNCell: gif_psc_exp
        cannot reset and integrate in the next step; no NEST model can, so the targets use n3ml's own cell,
        `own_current_alif`), reset 'subtract' (it removes theta + b', a product of the spike and the state) and
        refractory > 0 (gif_psc_exp clamps V while refractory, the IR holds it).
    """
    where = f"node `{name}` (ALIF) behind its synaptic current `{fused.syn}` (LI)"
    if prim.reset == "to-value":  # the targets give it n3ml's own cell (own_current_alif)
        raise UnsupportedError(
            f"{where} resets to v_reset: gif_psc_exp sets V to V_reset only in its refractory branch (t_ref = 0: "
            "never; t_ref >= 1 step: the step after each spike neither integrates the current nor fires)")
    if prim.reset == "subtract":
        raise UnsupportedError(f"{where}: reset 'subtract' removes theta + b' (the adaptation at the spike), a "
                               "product of the spike and the state that no static synapse or threshold component "
                               "forms. Use reset 'none'")
    if prim.refractory > 0:
        raise UnsupportedError(f"{where}: refractory={prim.refractory}; gif_psc_exp clamps V while refractory, "
                               "the IR holds v")
    c1 = N.discretize(fused.li, dt, scheme).rg
    cuba = P.CubaLIF(tau_syn=fused.li.tau, tau_mem=prim.tau, r=np.asarray(prim.r, np.float64) * np.asarray(c1),
                     theta=prim.theta, reset="none", v_leak=prim.v_leak, v_init=prim.v_init)
    k = gif_cell(name, cuba, dt, scheme, n)
    a_b = N.discretize(prim, dt, scheme).a_b
    q = np.broadcast_to(np.asarray(prim.q, np.float64) * np.asarray(a_b, np.float64), (n,))
    tau_b = np.broadcast_to(np.asarray(tau_from_factor(name, "tau_adapt", a_b, dt), np.float64), (n,))
    params = {**k.params, "q_sfa": q.reshape(n, 1).copy(), "tau_sfa": tau_b.reshape(n, 1).copy()}
    note = (f"ALIF behind its synaptic current {fused.syn} (LI" + (f", Delay {fused.delay}" if fused.delay else "")
            + "), reset none: the current and the adaptation as gif_psc_exp's (deterministic, no reset)")
    return GifCell(params, k.weight_scale, k.v_init, k.v_leak, k.a_m, note)


# n3ml's own NEST cell (nest/n3ml_cell.cpp): the IR's CubaLIF / ALIF step from its per-step factors, for the
# cells no NEST model forms (docs/backends/nest.md); the emitted program compiles it against its NEST.
OWN_CELL = "n3ml_cell"
OWN_CELL_SOURCE = "n3ml_cell.cpp"


class OwnCell(NamedTuple):
    """n3ml_cell's parameters (V_m = v - v_leak, theta and v_reset shifted) standing for one neuron node."""

    params: dict[str, Any]
    v_init: Any
    v_leak: Any
    a_m: Any
    note: str


def own_cell(name: str, op: str, k: N.Discrete, a_s, rg, n: int, note: str) -> OwnCell:
    """The parameters of n3ml_cell for a neuron discretized as `k` whose current decays by `a_s` (0: no
    current, the input enters v directly) and enters v with gain `rg` (weights stay in IR units). Every
    reset and refractoriness are the IR's (docs/semantics.md §5)."""
    vl = np.asarray(0.0 if k.v_leak is None else k.v_leak, np.float64)
    a = 1.0 if k.a is None else k.a  # IF: no leak
    params = {"a_m": per_neuron(a, n), "a_s": per_neuron(a_s, n), "rg": per_neuron(rg, n),
              "a_b": per_neuron(0.0 if k.a_b is None else k.a_b, n), "q": per_neuron(0.0 if k.q is None else k.q, n),
              "theta": per_neuron(np.asarray(k.theta, np.float64) - vl, n),
              "v_reset": per_neuron(np.asarray(k.v_reset, np.float64) - vl, n),
              "reset": {"none": 0.0, "to-value": 1.0, "subtract": 2.0}[k.reset],
              "rho": per_neuron(k.theta, n), "refractory": float(k.refractory)}
    return OwnCell(params, per_neuron(np.asarray(k.v_init, np.float64) - vl, n), per_neuron(vl, n),
                   per_neuron(a, n), note)


def own_neuron(name: str, prim: P.Neuron, dt: float, scheme: str, n: int, why: str) -> OwnCell:
    """n3ml_cell for an IF, LIF, ALIF or CubaLIF as it is (`why`: what NEST's own models lack for it)."""
    k = N.discretize(prim, dt, scheme)
    return own_cell(name, prim.op, k, 0.0 if k.a_s is None else k.a_s, 1.0 if k.rg is None else k.rg, n,
                    f"{prim.op}, reset {k.reset}" + (f", refractory {k.refractory}" if k.refractory else "")
                    + f": n3ml's own NEST cell (n3ml_cell.cpp, built by the program; {why})")


def own_current_alif(name: str, fused: CurrentAlif, prim: P.ALIF, dt: float, scheme: str, n: int) -> OwnCell:
    """n3ml_cell for an ALIF behind its synaptic current (`fuse_current_alifs`): the LI's decay is the current's,
    r g of the ALIF times c of the LI its gain."""
    k = N.discretize(prim, dt, scheme)
    c1 = N.discretize(fused.li, dt, scheme).rg
    return own_cell(name, "ALIF", k, N.discretize(fused.li, dt, scheme).a, np.asarray(k.rg) * np.asarray(c1), n,
                    f"ALIF behind its synaptic current {fused.syn} (LI" + (f", Delay {fused.delay}" if fused.delay
                                                                             else "")
                    + f"), reset {k.reset}: n3ml's own NEST cell (n3ml_cell.cpp, built by the program)")


def own_filter_reader(name: str, prim: P.Neuron, dt: float, scheme: str, n: int) -> OwnCell:
    """n3ml_cell for a neuron that reads a SynapseFilter through its synapses (its cell keeps the filter states,
    `filter_ports`): an IF / LIF / ALIF / CubaLIF as it is, an LI / Integrator as a cell that never fires
    (theta = inf), its V_m recorded."""
    why = "it reads a SynapseFilter: the cell keeps the filter's state per source neuron (filter ports)"
    if not prim.spiking:
        k = N.discretize(prim, dt, scheme)
        vl = np.asarray(0.0 if k.v_leak is None else k.v_leak, np.float64)
        a = 1.0 if k.a is None else k.a  # Integrator: no leak
        return OwnCell(_never_fires(a, 1.0 if k.rg is None else k.rg, n), per_neuron(np.asarray(k.v_init) - vl, n),
                       per_neuron(vl, n), per_neuron(a, n), f"{prim.op} (non-spiking), V_m recorded: n3ml's own NEST "
                       f"cell (n3ml_cell.cpp, built by the program; {why})")
    return own_neuron(name, prim, dt, scheme, n, why)


def own_value_readout() -> OwnCell:
    """n3ml_cell as the value readout of an Output that reads a SynapseFilter (`_record`): a_m = 0, so V_m is
    the step's input, x + sum of w_p f_p; read through weights 1, exactly the filters' currents."""
    return OwnCell(_never_fires(0.0, 1.0, 1), 0.0, 0.0, 0.0, "synapse value of an Output through SynapseFilter "
                   "ports, V_m recorded: n3ml's own NEST cell (n3ml_cell.cpp, built by the program)")


def _never_fires(a_m, rg, n: int) -> dict[str, Any]:
    return {"a_m": per_neuron(a_m, n), "a_s": 0.0, "rg": per_neuron(rg, n), "a_b": 0.0, "q": 0.0, "theta": np.inf,
            "v_reset": 0.0, "reset": 0.0, "rho": 0.0, "refractory": 0.0}


def own_cuba(name: str, prim: P.CubaLIF, dt: float, scheme: str, n: int) -> OwnCell:
    """n3ml_cell for a CubaLIF whose current must enter v in the step it arrives (a one-step loop)."""
    return own_neuron(name, prim, dt, scheme, n, "its current enters v in the step it arrives")


def li_chain_cell(name: str, first: P.LI, second: P.LI, dt: float, scheme: str, n: int, model: str) -> CubaCell:
    """The constants of `model` (iaf_psc_exp, IF_curr_exp) standing for LI1 -> LI2 fused by `fuse_li_chains`:
    with i = j / c1 the chain is i_t = a1 i_{t-1} + I_t, v_t = v_leak + a2 (v_{t-1} - v_leak) + c1 c2 i_t, a
    CubaLIF that never fires (V_th = inf)."""
    k1, k2 = N.discretize(first, dt, scheme), N.discretize(second, dt, scheme)
    a_s, a_m = np.asarray(k1.a, np.float64), np.asarray(k2.a, np.float64)
    tau_s = np.asarray(tau_from_factor(name, "tau (first LI)", a_s, dt))
    tau_m = np.asarray(tau_from_factor(name, "tau", a_m, dt))
    if np.any(tau_m == NO_LEAK_TAU) or np.any(tau_s == NO_LEAK_TAU):
        raise UnsupportedError(f"node `{name}` (LI after LI): a decay factor of 1 has no {model} equivalent")
    _check_current_decay(name, "LI after LI", a_s, model)
    vl = per_neuron(second.v_leak, n)
    p21 = exp_current_gain(tau_m, tau_s, a_m, a_s, dt)
    return CubaCell(per_neuron(tau_m, n), per_neuron(tau_s, n), per_neuron(a_m, n), np.inf, 0.0,
                    per_neuron(np.asarray(second.v_init, np.float64) - vl, n), vl,
                    per_neuron(np.asarray(k1.rg) * np.asarray(k2.rg) / p21, n))


def fuse_synaptic_reset(graph: Graph) -> tuple[Graph, dict[str, np.ndarray]]:
    """snnTorch's Synaptic as traced: LI -> Add(LI, Scale(Delay(lif)), ...) -> LIF(subtract / none), the LI
    (v_leak = v_init = 0) feeding only the Add, the Add only the LIF, every other term of the Add the LIF's
    own spikes one step late (its reset term `- threshold * spk[t-1]`). The LI and the LIF become one
    CubaLIF (as `fuse-synaptic` does, r = r_LIF c_LI); the self terms cannot go into its current (they
    enter the membrane directly), so they are returned instead: {LIF: jump (n,)}, the voltage each spike
    adds one step later (r g of the LIF times the Scale), which the target folds into its reset."""
    found: dict[str, tuple[str, str, list[str]]] = {}
    for name, p in graph.nodes.items():
        if type(p) is not P.LIF or p.reset == "to-value" or p.refractory:
            continue
        (add,) = graph.inputs_of(name)
        if not isinstance(graph.nodes[add], P.Add) or graph.users_of(add) != [name]:
            continue
        li, loops = None, []
        for term in graph.inputs_of(add):
            q = graph.nodes[term]
            d = graph.inputs_of(term)[0] if isinstance(q, P.Scale) else None
            if (type(q) is P.LI and li is None and graph.users_of(term) == [add]
                    and not np.any(np.asarray(q.v_leak)) and not np.any(np.asarray(q.v_init))):
                li = term
            elif (d is not None and isinstance(graph.nodes[d], P.Delay) and graph.nodes[d].steps == 1
                  and graph.inputs_of(d) == [name] and graph.users_of(term) == [add] and graph.users_of(d) == [term]):
                loops.append(term)
            else:
                break
        else:
            if li is not None and loops:
                found[name] = (add, li, loops)
    if not found:
        return graph, {}
    types = graph.verify()
    g = graph.copy()
    jumps = {}
    for name, (add, li, loops) in found.items():
        lif, syn = graph.nodes[name], graph.nodes[li]
        c1 = N.discretize(syn, float(graph.dt), graph.scheme).rg
        rg = N.discretize(lif, float(graph.dt), graph.scheme).rg
        shape = types[name].shape
        factor = sum(np.broadcast_to(np.asarray(graph.nodes[t].factor, np.float64), shape) for t in loops)
        jumps[name] = (np.broadcast_to(np.asarray(rg, np.float64), shape) * factor).ravel()
        keep = {f: getattr(lif, f) for f in ("theta", "v_reset", "reset", "refractory", "v_init", "detach_reset",
                                             "surrogate", "slope", "v_leak")}
        g.nodes[name] = P.CubaLIF(tau_syn=syn.tau, tau_mem=lif.tau,
                                  r=np.asarray(lif.r, np.float64) * np.asarray(c1, np.float64), **keep)
        (before,) = graph.inputs_of(li)
        gone = {add, li, *loops, *(graph.inputs_of(t)[0] for t in loops)}
        g.edges = [e for e in g.edges if e.dst not in gone and e.src not in gone and e.dst != name] + \
            [Edge(before, name, 0)]
        for n in gone:
            del g.nodes[n]
    g.verify()
    return g, jumps


def choose_cells(graph: Graph, models: dict[type, Callable[..., Any]], what: str, target: str,
                 skip: Collection[str] = (), **options) -> dict[str, Any]:
    """A cell for every neuron node but `skip` (those the target makes itself), made by
    `models[type(prim)](name, prim, dt, scheme, size, **options)`.

    Raises:
        UnsupportedError naming the first neuron whose primitive has no entry (`what`: "NEST model").
    """
    types = graph.verify()
    cells = {}
    for name, prim in graph.nodes.items():
        if not isinstance(prim, P.Neuron) or name in skip or type(prim) in KEPT_BY_CELLS:
            continue  # a SynapseFilter is kept by the cells it feeds (filter ports)
        if type(prim) is P.FixedSynapseFilter:
            raise UnsupportedError(f"node `{name}` (FixedSynapseFilter) has no {what}: the integer filter is "
                                   "quantize's form for Lava; the float SynapseFilter maps to filter ports of "
                                   f"n3ml's own NEST cell (convert without quantize for {target})")
        make = models.get(type(prim))
        if make is None:
            raise UnsupportedError(f"node `{name}` ({prim.op}) has no {what}; the {target} target supports "
                                   f"{', '.join(c.__name__ for c in models)}")
        cells[name] = make(name, prim, float(graph.dt), graph.scheme, types[name].size, **options)
    return cells


# --------------------------------------------------------------- linear maps

Terms = dict[tuple[str, int], Sparse]  # (source population, IR delay) -> matrix (node size x source size)


def _index_grid(shape: tuple[int, ...]) -> np.ndarray:
    return np.arange(int(np.prod(shape))).reshape(shape)


def _conv2d_matrix(prim: P.Conv2d, in_shape, out_shape) -> Sparse:
    w = prim.weight
    co, cig, kh, kw = w.shape
    ci, hi, wi = in_shape
    _, ho, wo = out_shape
    cog = co // prim.groups
    o_c, o_h, o_w, k_c, k_h, k_w = np.meshgrid(np.arange(co), np.arange(ho), np.arange(wo), np.arange(cig),
                                               np.arange(kh), np.arange(kw), indexing="ij")
    in_c = (o_c // cog) * cig + k_c
    in_h = o_h * prim.stride[0] - prim.padding[0] + k_h * prim.dilation[0]
    in_w = o_w * prim.stride[1] - prim.padding[1] + k_w * prim.dilation[1]
    ok = (in_h >= 0) & (in_h < hi) & (in_w >= 0) & (in_w < wi)
    rows = ((o_c * ho + o_h) * wo + o_w)[ok]
    cols = ((in_c * hi + in_h) * wi + in_w)[ok]
    vals = w[o_c, k_c, k_h, k_w][ok].astype(np.float64)
    return _coalesce(rows, cols, vals, (co * ho * wo, ci * hi * wi))


def _pool_matrix(prim: P._Pool2d, in_shape, out_shape) -> Sparse:
    c, hi, wi = in_shape
    _, ho, wo = out_shape
    kh, kw = prim.kernel
    sh, sw = prim.stride_
    o_c, o_h, o_w, k_h, k_w = np.meshgrid(np.arange(c), np.arange(ho), np.arange(wo), np.arange(kh),
                                          np.arange(kw), indexing="ij")
    in_h = o_h * sh - prim.padding[0] + k_h
    in_w = o_w * sw - prim.padding[1] + k_w
    ok = (in_h >= 0) & (in_h < hi) & (in_w >= 0) & (in_w < wi)
    rows = ((o_c * ho + o_h) * wo + o_w)[ok]
    cols = ((o_c * hi + in_h) * wi + in_w)[ok]
    val = 1.0 / (kh * kw) if isinstance(prim, P.AvgPool2d) else 1.0
    return _coalesce(rows, cols, np.full(rows.size, val), (c * ho * wo, c * hi * wi))


def _apply(terms: Terms, m: Sparse) -> Terms:
    return {k: m @ v for k, v in terms.items()}


def _add_terms(acc: Terms, more: Terms) -> Terms:
    out = dict(acc)
    for k, v in more.items():
        out[k] = out[k].plus(v) if k in out else v
    return out


def _bias_term(b: np.ndarray) -> Terms:
    b = np.asarray(b, np.float64).ravel()
    nz = np.flatnonzero(b)
    if nz.size == 0:
        return {}
    return {(CLOCK, 0): Sparse(nz, np.zeros(nz.size, np.int64), b[nz], (b.size, 1))}


ENCODERS = (P.PoissonRate, P.Latency)


def _encoder(prim) -> dict:
    if isinstance(prim, P.PoissonRate):
        return {"type": "poisson", "gain": float(prim.gain), "seed": int(prim.seed)}
    return {"type": "latency", "window": int(prim.window), "x_min": float(prim.x_min)}


LINEAR = (P.Dense, P.Conv1d, P.Conv2d, P.SumPool2d, P.AvgPool2d, P.Flatten, P.Scale, P.Add, P.Concat, P.Delay,
          P.ConstantCurrent)
NEURONS = (P.IF, P.LIF, P.CubaLIF, P.ALIF, P.LI, P.Integrator, P.FixedCubaLIF)
# states no synapse carries, kept by the cells they feed (filter ports of n3ml's own NEST cell)
KEPT_BY_CELLS = (P.SynapseFilter,)


def _linear_terms(graph: Graph, name: str, prim: P.Primitive, ins: list[Terms], types) -> Terms:
    rule = _LINEAR_RULES.get(type(prim))
    if rule is None:  # pragma: no cover - LINEAR and the table list the same operations
        raise UnsupportedError(f"node `{name}` ({prim.op}): no linear lowering")
    return rule(prim, ins, [types[s] for s in graph.inputs_of(name)], types[name])


def _t_dense(prim, ins, in_types, out_t) -> Terms:
    t = _apply(ins[0], Sparse.from_dense(prim.weight))
    return _add_terms(t, _bias_term(prim.bias)) if prim.bias is not None else t


def _t_conv(prim, ins, in_types, out_t) -> Terms:
    if isinstance(prim, P.Conv1d):
        as2d = P.Conv2d(weight=prim.weight[:, :, None, :], stride=(1, prim.stride), padding=(0, prim.padding),
                        dilation=(1, prim.dilation), groups=prim.groups)
        m = _conv2d_matrix(as2d, (in_types[0].shape[0], 1, in_types[0].shape[1]),
                           (out_t.shape[0], 1, out_t.shape[1]))
    else:
        m = _conv2d_matrix(prim, in_types[0].shape, out_t.shape)
    t = _apply(ins[0], m)
    if prim.bias is not None:
        per_out = np.repeat(np.asarray(prim.bias, np.float64), int(np.prod(out_t.shape[1:])))
        t = _add_terms(t, _bias_term(per_out))
    return t


def _t_pool(prim, ins, in_types, out_t) -> Terms:
    return _apply(ins[0], _pool_matrix(prim, in_types[0].shape, out_t.shape))


def _t_flatten(prim, ins, in_types, out_t) -> Terms:
    return ins[0]


def _t_scale(prim, ins, in_types, out_t) -> Terms:
    f = np.broadcast_to(np.asarray(prim.factor, np.float64), out_t.shape).ravel()
    return {k: v.scale_rows(f) for k, v in ins[0].items()}


def _t_current(prim, ins, in_types, out_t) -> Terms:
    t = {k: v.scale_rows(float(prim.scale)) for k, v in ins[0].items()}
    return _add_terms(t, _bias_term(np.full(out_t.size, float(prim.offset))))


def _t_add(prim, ins, in_types, out_t) -> Terms:
    acc: Terms = {}
    for t in ins:
        acc = _add_terms(acc, t)
    return acc


def _t_concat(prim, ins, in_types, out_t) -> Terms:
    # out position -> (which input, index within it), from concatenated index grids
    offsets = np.cumsum([0] + [t.size for t in in_types])
    grid = np.concatenate([_index_grid(t.shape) + off for t, off in zip(in_types, offsets[:-1])],
                          axis=prim.axis).ravel()
    acc: Terms = {}
    n = grid.size
    for i, t in enumerate(ins):
        pos = np.flatnonzero((grid >= offsets[i]) & (grid < offsets[i + 1]))
        sel = Sparse(pos, grid[pos] - offsets[i], np.ones(pos.size), (n, in_types[i].size))
        acc = _add_terms(acc, _apply(t, sel))
    return acc


def _t_delay(prim, ins, in_types, out_t) -> Terms:
    return {(src, d + prim.steps): v for (src, d), v in ins[0].items()}


# each linear operation as a map of its inputs' terms (source population, IR delay) -> matrix
_LINEAR_RULES: dict[type, Callable[..., Terms]] = {
    P.Dense: _t_dense, P.Conv1d: _t_conv, P.Conv2d: _t_conv, P.SumPool2d: _t_pool, P.AvgPool2d: _t_pool,
    P.Flatten: _t_flatten, P.Scale: _t_scale, P.ConstantCurrent: _t_current, P.Add: _t_add, P.Concat: _t_concat,
    P.Delay: _t_delay,
}


# ------------------------------------------------------------------- lowering


def spike_maxpool_as_or(graph: Graph) -> Graph:
    """Replace every MaxPool2d over spikes by SumPool2d -> IF(theta=0.5, reset to 0): an OR neuron.

    Over spikes (0/1) the window maximum is 1 exactly when the window sum is >= 1; the IF neuron starts
    every step at 0 (it is reset after each spike, and a silent window adds 0), so it fires exactly when
    the sum exceeds 0.5. Zero padding equals MaxPool's -inf padding because every window holds at least
    one real entry. The neuron costs the simulator one step, which the latencies absorb like any other.
    The IF keeps the MaxPool's name, so users and Outputs of the node are unchanged.
    """
    types = graph.verify()
    pools = [n for n, p in graph.nodes.items() if isinstance(p, P.MaxPool2d) and types[n].kind == "spike"]
    if not pools:
        return graph
    g = graph.copy()
    for name in pools:
        p = g.nodes[name]
        summed = name + "_sum"
        while summed in g.nodes:
            summed += "_"
        nodes = {}
        for n, prim in g.nodes.items():
            if n == name:
                nodes[summed] = P.SumPool2d(kernel=p.kernel, stride=p.stride, padding=p.padding)
                nodes[name] = P.IF(theta=0.5, reset="to-value", v_reset=0.0)
            else:
                nodes[n] = prim
        g.nodes = nodes
        g.edges = [Edge(e.src, summed, e.dst_port) if e.dst == name else e for e in g.edges] + [Edge(summed, name)]
    g.verify()
    return g



def _populations(graph: Graph, net: Netlist, types: dict, inputs: dict[str, list[str]], generator_latency: int,
                 target: str) -> "dict[str, Terms]":
    """One population per Input, encoder of an Input and neuron; the identity term of each (what reads it
    sees its own output). Linear nodes are folded later; anything else has no netlist form."""
    terms: dict[str, Terms] = {}
    for name in graph.topo_order():
        prim = graph.nodes[name]
        srcs = inputs[name]
        if isinstance(prim, P.Input):
            kind = "spike_input" if prim.kind == "spike" else "analog_input"
            lat = PARROT_LATENCY if kind == "spike_input" else generator_latency
            net.populations[name] = Population(name, kind, tuple(types[name].shape), prim, latency=lat, source=name)
            terms[name] = {(name, 0): Sparse.eye(types[name].size)}
        elif isinstance(prim, ENCODERS) and isinstance(graph.nodes[srcs[0]], P.Input):
            # the random stream / timing is part of the IR's semantics: the program encodes the Input's data
            net.populations[name] = Population(name, "spike_input", tuple(types[name].shape), prim,
                                               latency=PARROT_LATENCY, source=srcs[0], encoder=_encoder(prim))
            terms[name] = {(name, 0): Sparse.eye(types[name].size)}
        elif isinstance(prim, NEURONS):
            net.populations[name] = Population(name, "neuron", tuple(types[name].shape), prim)
            terms[name] = {(name, 0): Sparse.eye(types[name].size)}
        elif isinstance(prim, LINEAR) or type(prim) in KEPT_BY_CELLS:
            pass  # folded once its inputs are known (Delays may close loops: done below)
        elif isinstance(prim, P.Output):
            pass
        else:
            where = (" (encoders are supported right after an Input)" if isinstance(prim, ENCODERS) else "")
            raise UnsupportedError(f"node `{name}` ({prim.op}) cannot be lowered to {target}{where}: only neurons "
                                   "(IF, LIF, CubaLIF, ALIF, LI, Integrator), inputs, PoissonRate/Latency encoders "
                                   "of inputs, linear synapse operations (Dense, Conv, Sum/AvgPool, Flatten, Scale, "
                                   "Add, Concat, Delay, ConstantCurrent) and SynapseFilters of spikes (kept by the "
                                   "cells they feed) map to populations and projections")
    return terms


def lower_ir_to_netlist(graph: Graph, *, extra_steps: dict[str, int] | None = None,
                        generator_latency: int = GENERATOR_LATENCY, target: str = "the target") -> Netlist:
    """Fold the graph's synapse chains into projections and solve the per-population latencies.

    Args:
        extra_steps: neuron node -> steps between input arrival and output in the target's cell model
            (1 for synaptic-current cells that integrate the current of the previous step); default 0.
        generator_latency: simulator step at which generators (clock, analog inputs) emit IR step 0
            (PyNN's spike sources cannot emit before step 2).
        target: target name used in error messages.
    Raises:
        UnsupportedError naming the node when an operation has no netlist form (the target's own
        model checks come on top).
    """
    types = graph.verify()
    extra_steps = extra_steps or {}
    net = Netlist(graph.name, float(graph.dt), graph.scheme)
    net.data = {n: (graph.nodes[n].kind, tuple(graph.nodes[n].shape)) for n in graph.input_names}
    net.populations[CLOCK] = Population(CLOCK, "clock", (1,), latency=generator_latency)
    inputs = graph.input_map()  # one pass over the edges: inputs_of per node would be quadratic
    terms: dict[str, Terms] = _populations(graph, net, types, inputs, generator_latency, target)
    vias: dict[str, dict[tuple[str, int], tuple[str, ...]]] = {}

    def terms_of(name: str, stack: tuple[str, ...] = ()) -> Terms:
        if name in terms:
            return terms[name]
        if name in stack:  # a loop made of linear nodes only cannot happen in a verified graph
            raise UnsupportedError(f"node `{name}`: loop without a neuron")  # pragma: no cover
        prim = graph.nodes[name]
        srcs = inputs[name]
        ins = [terms_of(s, stack + (name,)) for s in srcs]
        terms[name] = (_filter_terms(net, name, prim, ins[0], types[name].shape) if type(prim) is P.SynapseFilter
                       else _linear_terms(graph, name, prim, ins, types))
        # the IR nodes each term passes through, for the notes of the network description
        shift = prim.steps if isinstance(prim, P.Delay) else 0
        vias[name] = {}
        for key in terms[name]:
            before = (key[0], key[1] - shift)
            passed = [n for s in srcs for n in vias.get(s, {}).get(before, ())]
            vias[name][key] = tuple(dict.fromkeys(passed + [name]))
        return terms[name]

    for name, prim in graph.nodes.items():
        if isinstance(prim, NEURONS):
            (src,) = inputs[name]
            for (s, d), w in terms_of(src).items():
                _check_source(graph, net, name, s)
                net.projections.append(_projection(net, s, name, d, w, vias.get(src, {}).get((s, d), ())))
    for name, prim in graph.nodes.items():
        if isinstance(prim, P.Output):
            (src,) = inputs[name]
            net.records.append(_record(graph, net, name, src, terms_of(src), types[name].shape, target,
                                       vias.get(src, {})))
    used = {pr.source for pr in net.projections} | {p.source for r in net.records for p in r.parts}
    for name in [n for n, p in net.populations.items() if p.kind != "neuron" and n not in used]:
        del net.populations[name]  # the clock without biases, Inputs read only by encoders
    _solve_latencies(net, extra_steps, generator_latency, target)
    return net


def lower_with_fast_cells(graph: Graph, cells: dict[str, Any], extra_steps: Callable[[Any], int],
                          fast: Callable[[str], Any] | None, **options) -> Netlist:
    """`lower_ir_to_netlist` with the cells' extra steps; when a loop is too short for them, each CubaLIF on it
    whose cell takes an extra step (iaf_psc_exp, IF_curr_exp) gets the cell `fast(name)` (n3ml's
    own NEST cell, whose current enters v in the step it arrives), and the latencies are solved again.
    `fast` None (a simulator without that cell): the loop is refused, naming simulator=nest."""
    while True:
        try:
            return lower_ir_to_netlist(graph, extra_steps={k: extra_steps(c) for k, c in cells.items()}, **options)
        except LoopError as e:
            redo = [c for c in e.cells if extra_steps(cells[c]) and type(graph.nodes[c]) is P.CubaLIF]
            if not redo:
                raise
            if fast is None:
                raise LoopError(f"{e}; with simulator=nest such a CubaLIF is n3ml's own NEST cell, which takes no "
                                "extra step", e.cells) from None
            for c in redo:
                cells[c] = fast(c)


def _check_source(graph: Graph, net: Netlist, dst: str, src: str) -> None:
    if src == CLOCK or src in net.filters:
        return
    pop = net.populations[src]
    if pop.kind == "neuron" and not pop.prim.spiking:
        if isinstance(pop.prim, (P.LI, P.Integrator)) and isinstance(graph.nodes.get(dst), (P.LI, P.Integrator)):
            raise UnsupportedError(f"node `{dst}` reads the voltage of `{src}` ({pop.prim.op}) through synapses; "
                                   "an LI -> LI chain maps only when the first LI feeds the second directly, "
                                   "alone, with v_leak = v_init = 0 (one exponential-current cell)")
        if isinstance(pop.prim, P.LI) and isinstance(graph.nodes.get(dst), P.ALIF):
            raise UnsupportedError(
                f"node `{dst}` (ALIF) reads the voltage of `{src}` (LI) through synapses: an LI is an ALIF's "
                "synaptic current (Norse's LSNNCell, one exponential-current cell) only when it feeds the ALIF "
                "alone, directly or through one Delay that feeds only the ALIF, with v_leak = v_init = 0; "
                "simulator synapses carry spikes only")
        if isinstance(pop.prim, P.LI) and getattr(graph.nodes.get(dst), "spiking", False):
            raise UnsupportedError(
                f"node `{dst}` ({graph.nodes[dst].op}) reads the voltage of `{src}` (LI) through synapses; an LI "
                "that is a synaptic current maps onto an exponential-current cell only when it feeds the neuron "
                "alone (fuse-synaptic: one CubaLIF) or beside the neuron's own spikes one step late (snnTorch's "
                "Synaptic: a LIF with reset by subtraction or none, refractory 0, the LI with v_leak = v_init = 0); "
                "simulator synapses carry spikes only")
        raise UnsupportedError(f"node `{dst}` reads the voltage of `{src}` ({pop.prim.op}) through synapses; "
                               "simulator synapses carry spikes only (a non-spiking neuron can only be recorded)")


def _record(graph: Graph, net: Netlist, name: str, src: str, t: Terms, shape, target: str,
            vias: dict[tuple[str, int], tuple[str, ...]]) -> Record:
    """An Output is a selection of recorded neurons (unit entries, each output entry from one neuron), or
    else a synapse value (Dense/Conv results, biases): then a value readout population records it.

    A value readout is a never-firing delta cell whose membrane forgets its previous value within one
    step (decay exp(-1000) = 0.0 exactly in float64), so its V is the step's summed input: the synapse
    value, exact up to the order of the float additions. It reads the same projections a neuron would.
    """
    n = int(np.prod(shape))
    covered = np.concatenate([m.rows for m in t.values()]) if t else np.zeros(0, np.int64)
    selection = (CLOCK not in {s for s, _ in t} and all(np.all(m.vals == 1.0) for m in t.values())
                 and covered.size == n and np.array_equal(np.sort(covered), np.arange(n)))
    if selection and all(s in net.populations and net.populations[s].kind in ("neuron", "spike_input") for s, _ in t):
        parts = [RecordPart(s, m.rows.astype(np.int64), m.cols.astype(np.int64), d) for (s, d), m in t.items()]
        return Record(name, parts, tuple(shape))
    readout = graph.fresh_name(f"{name}_value", taken=net.populations)
    for s, _ in t:
        _check_source(graph, net, name, s)
    net.populations[readout] = Population(readout, "neuron", (n,), P.Integrator(), value_of=name)
    for (s, d), w in t.items():
        net.projections.append(_projection(net, s, readout, d, w, vias.get((s, d), ())))
    return Record(name, [RecordPart(readout, np.arange(n), np.arange(n), 0)], tuple(shape))


def _projection(net: Netlist, src: str, target: str, delay: int, w: Sparse, via: tuple[str, ...]) -> Projection:
    """The projection of one term: from a population, or from the elements of a SynapseFilter, whose synapses
    start at the spiking population the filter reads, `delay` + the filter's own delay steps late."""
    fg = net.filters.get(src)
    if fg is None:
        return Projection(src, target, delay, w, via)
    return Projection(fg.source, target, delay + fg.delay, w, via, filter=fg)


def _filter_terms(net: Netlist, name: str, prim: P.SynapseFilter, t: Terms, shape) -> Terms:
    """The terms of a SynapseFilter: one element source per (spiking population, delay) it reads (a
    `FilterGroup` in `net.filters`), which the synapses after it extend like a population's neurons.

    A Delay in front of the filter commutes with it (a filter of 0 input starting at 0 stays 0, the Delay's
    value for its first steps), so its steps join the synapses' delay.

    Raises:
        UnsupportedError naming the node for v_init != 0 (the receiving cells' filter states start at 0 when
        the cell's IR time begins, through any Delay), or an input that is not a selection of spikes.
    """
    if np.any(np.asarray(prim.v_init) != 0.0):
        raise UnsupportedError(f"node `{name}` (SynapseFilter): v_init must be 0 on this target (the receiving "
                               "cells keep the filter's state, which starts at 0), found "
                               f"{np.asarray(prim.v_init).ravel()[:4]}")
    n = int(np.prod(shape))
    leak = np.broadcast_to(np.asarray(prim.leak, np.float64), tuple(shape)).ravel()
    out: Terms = {}
    for (s, d), m in t.items():
        pop = net.populations.get(s)
        spiking = pop is not None and (pop.kind == "spike_input" or (pop.kind == "neuron" and pop.prim.spiking))
        if not spiking or not np.all(m.vals == 1.0) or np.unique(m.rows).size != m.nnz:
            raise UnsupportedError(f"node `{name}` (SynapseFilter) reads `{s}` other than as spikes passed on "
                                   "unchanged (Flatten, Concat, Delay); its filter ports take one spiking neuron each")
        key = f"{name}@{s}+{d}"  # not a node name: `@` is no identifier character
        net.filters[key] = FilterGroup(name, s, d, m.cols.astype(np.int64), leak[m.rows])
        out[(key, 0)] = Sparse(m.rows.astype(np.int64), np.arange(m.nnz), np.ones(m.nnz), (n, m.nnz))
    return out


def filter_readers(graph: Graph) -> set[str]:
    """Neuron nodes whose input reaches a SynapseFilter through synapse operations: their cells keep filter
    ports (chosen before the latencies are solved, since the cell decides the extra steps)."""
    inputs = graph.input_map()
    found, seen = set(), {}

    def reaches(node: str) -> bool:
        if node not in seen:
            seen[node] = False  # a loop of linear nodes cannot happen in a verified graph
            prim = graph.nodes[node]
            seen[node] = type(prim) is P.SynapseFilter or (
                isinstance(prim, LINEAR) and any(reaches(s) for s in inputs[node]))
        return seen[node]

    for name, prim in graph.nodes.items():
        if isinstance(prim, NEURONS) and any(reaches(s) for s in inputs[name]):
            found.add(name)
    return found


def refuse_fused_filter_readers(readers: set[str], chains, jumps, alifs, target: str) -> None:
    """A cell made of two IR nodes (an LI chain, snnTorch's Synaptic, an ALIF behind its LI current) takes its input
    through the first node's current, where filter ports do not reach: refused, naming the node."""
    for name in sorted(readers):
        for fused, what in ((chains, "LI -> LI"), (jumps, "snnTorch's Synaptic (LI -> LIF)"),
                            (alifs, "an ALIF behind its LI current")):
            if name in fused:
                raise UnsupportedError(f"node `{name}` reads a SynapseFilter through synapses and is fused into one "
                                       f"{target} cell as {what}; the filter ports of n3ml's own NEST cell feed its "
                                       "input, not a fused current. Put a spiking neuron between them")


class FilterPorts(NamedTuple):
    """The filter ports of one population: `ports` per cell (the most any cell needs), the leak per port
    (one float if uniform, else (n, ports), 0 where unused) and, per filtered projection into it, the
    synapses (pre: source neuron, post: target neuron, weight in IR units, port 1..ports)."""

    ports: int
    leak: Any
    synapses: list[tuple[Projection, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


def filter_ports(net: Netlist, target: str) -> FilterPorts:
    """Number the filter ports of each cell of `target`: one per filtered synapse (a nonzero weight), in the
    order of the projections and of the filter elements."""
    n = net.populations[target].size
    parts = []
    for k, pr in enumerate(p for p in net.projections if p.target == target and p.filter is not None):
        keep = pr.weights.vals != 0.0
        rows, cols = pr.weights.rows[keep].astype(np.int64), pr.weights.cols[keep].astype(np.int64)
        parts.append((pr, rows, cols, pr.weights.vals[keep]))
    if not parts:
        return FilterPorts(0, 0.0, [])
    post = np.concatenate([r for _, r, _, _ in parts])
    which = np.concatenate([np.full(r.size, k) for k, (_, r, _, _) in enumerate(parts)])
    elem = np.concatenate([c for _, _, c, _ in parts])
    order = np.lexsort((elem, which, post))
    first = np.searchsorted(post[order], post[order], side="left")
    port = np.empty(post.size, np.int64)
    port[order] = np.arange(post.size) - first + 1  # rank among the synapses of the same cell
    leak = np.concatenate([pr.filter.leak[c] for pr, _, c, _ in parts])
    if not leak.size:  # every filtered weight 0: no port
        return FilterPorts(0, 0.0, [])
    ports = int(port.max())
    table: Any = float(leak[0])  # one leak for every port (SpikingJelly's: one per layer)
    if np.any(leak != leak[0]):
        table = np.zeros((n, ports))  # unused ports of a cell with fewer than `ports`: 0, never read
        table[post, port - 1] = leak
    out, at = [], 0
    for pr, rows, cols, vals in parts:
        sl = slice(at, at + rows.size)
        out.append((pr, pr.filter.cols[cols], rows, vals, port[sl]))
        at += rows.size
    return FilterPorts(ports, table, out)


def _solve_latencies(net: Netlist, extra_steps: dict[str, int], generator_latency: int, target: str) -> None:
    """Smallest arrivals with arrival(dst) >= latency(src) + 1 - ir_delay on every projection."""
    neurons = net.neurons
    for p in neurons:
        p.arrival = generator_latency + 1  # the earliest step a generator's event can arrive
        p.latency = p.arrival + extra_steps.get(p.name, 0)
    raised_by: dict[str, Projection] = {}  # population -> the projection that last raised its arrival
    last = None
    for _ in range(len(neurons) + 2):
        last = None
        for pr in net.projections:
            dst, src = net.populations[pr.target], net.populations[pr.source]
            need = src.latency + 1 - pr.ir_delay
            if dst.arrival < need:
                dst.arrival = need
                dst.latency = need + extra_steps.get(dst.name, 0)
                raised_by[dst.name] = last = pr
        if last is None:
            break
    if last is not None:
        message, cells = _loop_refusal(net, raised_by, last, extra_steps, target)
        raise LoopError(message, cells)
    for pr in net.projections:
        pr.delay = net.populations[pr.target].arrival - net.populations[pr.source].latency + pr.ir_delay


class LoopError(UnsupportedError):
    """A loop with fewer Delay steps than the target needs; `cells`: its cells that take an extra step (a target
    may give them another cell and try again)."""

    def __init__(self, message: str, cells: tuple[str, ...]):
        super().__init__(message)
        self.cells = cells


def _loop_refusal(net: Netlist, raised_by: dict[str, Projection], last: Projection, extra_steps: dict[str, int],
                  target: str) -> tuple[str, tuple[str, ...]]:
    """The message for a loop the latencies cannot satisfy, naming its nodes. Arrivals still rising after
    as many rounds as there are neurons come from a loop that needs more steps than its Delays give; going
    back along the projections that raised them from the last one raised reaches that loop (the node raised
    last may only sit downstream of it)."""
    node = last.target
    for _ in range(len(net.neurons) + 1):
        if node not in raised_by:  # pragma: no cover - a chain of raises long enough always holds a loop
            return (f"node `{last.target}` lies on or after a loop whose Delay steps are fewer than the steps "
                    f"{target} needs to pass a spike once around it; add Delay steps or use another target"), ()
        node = raised_by[node].source
    loop, at = [], node
    while True:
        pr = raised_by[at]
        loop.append(pr)
        at = pr.source
        if at == node or len(loop) > len(net.neurons):
            break
    loop.reverse()
    names = [pr.source for pr in loop] + [node]
    given = sum(pr.ir_delay for pr in loop)
    needed = len(loop) + sum(extra_steps.get(pr.target, 0) for pr in loop)
    cells = [pr.target for pr in loop if extra_steps.get(pr.target, 0)]
    return (f"nodes {' -> '.join(f'`{n}`' for n in names)} form a loop with {given} Delay step"
            f"{'s' if given != 1 else ''}; {target} needs {needed} to pass a spike once around it (one per "
            "synapse" + (f", plus one per synaptic-current cell, which integrates the current of the previous step: "
                         f"{', '.join(f'`{c}` ({net.populations[c].prim.op})' for c in cells)}" if cells else "")
            + "); add Delay steps or use another target"), tuple(dict.fromkeys(cells))


# ------------------------------------------------- the network description of the emitted programs
# The nest and pynn programs are ordinary modules (`nest/runtime.py`, `pynn/runtime.py`, sharing
# `netlist_runtime.py`) copied verbatim; what varies is these tables, written to network.json.


def populations_data(net: Netlist, cells: dict[str, Any], arrays: Arrays, head) -> dict[str, dict]:
    """The "populations" table: one entry per neuron population, in creation order.

    Args:
        cells: population name -> the target's cell (with `params`, `v_init` and `note`).
        head: (population, cell) -> the entry's target-specific items (model, size, latency, ...).
    """
    return {pop.name: {"note": f"{pop.prim.op} {list(pop.shape)}: {cells[pop.name].note}",
                       **head(pop, cells[pop.name]),
                       "params": {k: arrays.value(f"p/{pop.name}/{k}", v) for k, v in cells[pop.name].params.items()},
                       "v_init": arrays.value(f"p/{pop.name}/v_init", cells[pop.name].v_init)}
            for pop in net.neurons}


def outputs_data(net: Netlist, cells: dict[str, Any], arrays: Arrays) -> dict[str, dict]:
    """The "outputs" table: per Output node, its parts (entries `rows` of the output are neurons `cols` of
    a recorded population, `shift` IR steps late; None: all, in order).

    Args:
        cells: population name -> the target's cell: what it records (`record`: "spikes", "V_m", "v") and
            the value added to recorded voltages (`v_offset`, the IR's v_leak). Inputs record spikes.
    """
    table = {}
    for r in net.records:
        parts = []
        for i, part in enumerate(r.parts):
            src = net.populations[part.source]
            key = f"o/{r.name}/{i}"
            cell = cells.get(part.source)
            record, v_offset = ("spikes", 0.0) if cell is None else (cell.record, cell.v_offset)
            parts.append({"source": part.source, "record": record,
                          "rows": (None if np.array_equal(part.rows, np.arange(r.size))
                                   else arrays.value(key + "/rows", part.rows)),
                          "cols": (None if np.array_equal(part.cols, np.arange(src.size))
                                   else arrays.value(key + "/cols", part.cols)),
                          "shift": int(part.shift), "v_offset": arrays.value(key + "/v_offset", v_offset)})
        table[r.name] = {"shape": list(r.shape), "parts": parts}
    return table


def inputs_data(net: Netlist) -> dict[str, dict]:
    """The "data" table (Input nodes: arrays (T, B, *shape) read from --input, by name) and the "inputs"
    table (input populations: the data of `source`, encoded by the IR's encoder if any)."""
    return {"data": {name: {"kind": kind, "shape": list(shape)} for name, (kind, shape) in net.data.items()},
            "inputs": {p.name: {"kind": "spike" if p.kind == "spike_input" else "analog", "shape": list(p.shape),
                                "latency": int(p.latency), "source": p.source, "encoder": p.encoder}
                       for p in net.inputs}}


def netlist_description(net: Netlist, fmt: str, version: str, steps: int) -> dict[str, Any]:
    """The items every nest/pynn description starts with (what `netlist_runtime.Network` reads)."""
    return {"format": fmt, "graph": net.name, "generated_by": f"n3ml {version}", "dt": float(net.dt),
            "default_steps": int(steps), "horizon": int(net.horizon), "clock": CLOCK in net.populations}


# ------------------------------------------------------------- legality (n3ml/passes/legalize.py)
# What the netlist lowering above takes, as the table the nest and pynn targets declare.

NETLIST_LEGAL: dict[str, str] = {
    "Input": "spike generators (relayed by parrots) or weighted events",
    "Output": "recorded spikes, V_m, or a synapse value read through a recording integrator",
    **{op: "folded into the weights of a projection" for op in
       ("Dense", "Conv1d", "Conv2d", "SumPool2d", "AvgPool2d", "Flatten", "Scale", "Add", "Concat", "Delay")},
    "ConstantCurrent": "a projection from the clock source",
    "PoissonRate": "spike trains drawn by the program (right after an Input)",
    "Latency": "spike trains computed by the program (right after an Input)",
    "IF": "a delta-synapse cell", "LIF": "a delta-synapse cell", "CubaLIF": "an exponential-current cell",
    "ALIF": ("a cell with an adaptive threshold: NEST's eprop models (reset to-value or none), gif_psc_exp behind "
             "its LI current (Norse's LSNNCell wiring, reset none), otherwise n3ml's own NEST cell (n3ml_cell, "
             "compiled by the program; PyNN: on NEST only)"),
    "LI": "a never-firing cell, V_m recorded", "Integrator": "a never-firing cell, V_m recorded",
    "SynapseFilter": ("filter ports of the cells it feeds (n3ml's own NEST cell keeps one filter state per filtered "
                      "source neuron; PyNN: on NEST only)"),
}
NETLIST_REASON = ("a spiking simulator runs point neurons joined by static synapses: only neurons, inputs and "
                  "linear synapse operations map to populations and projections")
NETLIST_WHY = {"MaxPool2d": "a synapse cannot take a maximum",
               # no `-p ann-to-snn` remedy: that conversion is for ANNs, and a ReLU left in a spiking graph (the
               # gate of SpikingJelly's SynapseFilter) is not an ANN activation; the reason says both
               "ReLU": ("an analog activation has no point-neuron form (a ReLU of spikes that is always 0 or 1, "
                        "SEW's IAND relu(x - y), is made a gate neuron by spike-gates; a ReLU of a state, like "
                        "the gate of SpikingJelly's SynapseFilter whose decay the input switches off, has no "
                        "form in synapses that add fixed weights; an ANN without spiking neurons is converted by "
                        "`-p ann-to-snn`, an approximation by rate coding, docs/conversion.md)"),
               "Softmax": "an analog activation has no point-neuron form",
               "FixedCubaLIF": "integer neurons are Lava's (quantize is for the lava target)",
               "FixedSynapseFilter": ("the integer filter is Lava's (quantize is for the lava target); the float "
                                      "SynapseFilter maps to filter ports of n3ml's own NEST cell"),
               "BatchNorm": "a BatchNorm that follows no Dense/Conv has no synapse to fold into"}
NETLIST_PIPELINE = ("fuse-synapse-filter", "fold-batchnorm", "fold-scales", "remove-identity", "maxpool-as-or", "spike-gates", "fuse-synaptic",
                    "remove-identity", "dce")


def netlist_legality(target: str):
    """The Legality the nest and pynn targets declare (built lazily: passes are imported on use)."""
    from ..passes.legalize import FOLD_BN, MAXPOOL_CURRENT, MAXPOOL_SPIKES, Legality

    return Legality(target, NETLIST_LEGAL, NETLIST_REASON, NETLIST_PIPELINE,
                    {"MaxPool2d": (MAXPOOL_SPIKES, MAXPOOL_CURRENT), "BatchNorm": (FOLD_BN,)}, NETLIST_WHY)
