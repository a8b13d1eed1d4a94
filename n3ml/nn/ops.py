"""n3ml's neuron dynamics and encoders as PyTorch operators (``torch.ops.n3ml.<op>``).

`torch.export` flattens Python code into ATen operations, so an exported neuron
module would become hundreds of unrolled element-wise operations from which its
parameters cannot be recovered. On the export path (``torch.compiler.is_exporting()``)
each n3ml.nn module therefore calls one operator from this file instead, and the
exported program keeps it as ONE node, ``torch.ops.n3ml.lif`` etc., whose arguments
are the module's IR fields. The `.pt2` frontend maps each node back to its primitive.

Training never goes through these operators: the modules' ordinary Python loop is
what autograd differentiates (with the surrogate gradient, learnable time constants,
detached resets). The operators still have

- a real implementation: that same Python loop, so ``ExportedProgram.module()`` runs
  and gives the module's outputs bit for bit;
- a fake implementation (output shaped like the input), which export traces;
- an autograd formula that recomputes the Python loop under autograd in the backward
  pass, so fine-tuning an exported program still uses the surrogate gradient.

Schemas (``x``: the whole sequence (T, B, ...); every numeric neuron field is a tensor:
0-d for a scalar, or one value per neuron; time constants in ms)::

    n3ml::if_(x, theta, v_reset, v_init, reset, refractory, surrogate, slope, detach_reset)
    n3ml::lif(x, tau, v_leak, r, theta, v_reset, v_init, reset, refractory, surrogate, slope,
              detach_reset, dt, scheme)
    n3ml::cuba_lif / alif / li / integrator: the same pattern over their fields
    n3ml::recurrent_<neuron>(x, weight, bias, delay, <the neuron's arguments>): `n3ml.nn.Recurrent`
    n3ml::poisson_rate(x, gain, seed), n3ml::constant_current(x, scale, offset),
    n3ml::latency(x, window, x_min)

The operators are registered once, when n3ml.nn is imported (a `.pt2` holding them
can only be loaded after that; the frontend imports n3ml.nn first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import torch

from . import functional as F
from .surrogate import spike_fn

__all__ = ["NeuronOp", "NEURON_OPS", "ENCODER_OPS", "neuron_op", "recurrent_op", "run_sequence", "run_recurrent"]

NAMESPACE = "n3ml"
SPIKING_ARGS = ("reset", "refractory", "surrogate", "slope", "detach_reset")
TIMED_ARGS = ("dt", "scheme")


@dataclass(frozen=True)
class NeuronOp:
    """One neuron operator: its name, the functional dynamics and the schema's fields."""

    name: str  # operator name in the n3ml namespace
    params_class: type[NamedTuple]
    step_fn: Callable
    numeric: tuple[str, ...]  # tensor arguments after x, in order
    spiking: bool = True
    timed: bool = True

    @property
    def args(self) -> tuple[str, ...]:
        """Argument names after x, in schema order."""
        return (self.numeric + (SPIKING_ARGS if self.spiking else ()) + (TIMED_ARGS if self.timed else ()))

    def schema(self) -> str:
        parts = ["Tensor x"] + [f"Tensor {n}" for n in self.numeric]
        if self.spiking:
            parts += ["str reset", "int refractory", "str surrogate", "float slope", "bool detach_reset"]
        if self.timed:
            parts += ["float dt", "str scheme"]
        return f"({', '.join(parts)}) -> Tensor"


NEURON_OPS: dict[str, NeuronOp] = {op.name: op for op in (  # numeric arguments: the Params' numbers, in order
    NeuronOp("if_", F.IFParams, F.if_step, F.numeric_fields(F.IFParams), timed=False),
    NeuronOp("lif", F.LIFParams, F.lif_step, F.numeric_fields(F.LIFParams)),
    NeuronOp("cuba_lif", F.CubaLIFParams, F.cuba_lif_step, F.numeric_fields(F.CubaLIFParams)),
    NeuronOp("alif", F.ALIFParams, F.alif_step, F.numeric_fields(F.ALIFParams)),
    NeuronOp("li", F.LIParams, F.li_step, F.numeric_fields(F.LIParams), spiking=False),
    NeuronOp("integrator", F.IntegratorParams, F.integrator_step, F.numeric_fields(F.IntegratorParams), spiking=False,
             timed=False),
    NeuronOp("synapse_filter", F.SynapseFilterParams, F.synapse_filter_step, F.numeric_fields(F.SynapseFilterParams),
             spiking=False, timed=False),
)}


# ------------------------------------------------------------------ dynamics


def _value(t: Any) -> Any:
    """A numeric argument as the functional API takes it: a float for a fixed scalar."""
    if isinstance(t, torch.Tensor) and t.ndim == 0 and not t.requires_grad:
        return float(t)
    return t


def _coefficients(op: NeuronOp, x: torch.Tensor, values: tuple) -> F.Coefficients:
    kw = dict(zip(op.args, values))
    fields: dict[str, Any] = {n: _value(kw[n]) for n in op.numeric}
    if op.spiking:
        fields.update(reset=kw["reset"], refractory=int(kw["refractory"]),
                      spike=spike_fn(kw["surrogate"], kw["slope"]), detach_reset=bool(kw["detach_reset"]))
    if op.timed:
        fields.update(dt=float(kw["dt"]), scheme=kw["scheme"])
    return F.coefficients(op.params_class(**fields), x[0])


def run_sequence(op: NeuronOp, x: torch.Tensor, values: tuple) -> torch.Tensor:
    """Run the dynamics of `op` over x (T, B, ...) from the initial state; `values` follow `op.args`."""
    c = _coefficients(op, x, values)
    state = None
    outs = []
    for t in range(x.shape[0]):
        o, state = op.step_fn(x[t], state, c)
        outs.append(o)
    return torch.stack(outs)


def run_recurrent(op: NeuronOp, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, delay: int,
                  values: tuple) -> torch.Tensor:
    """`n3ml.nn.Recurrent`: s_t = neuron(x_t + linear(s_{t-delay})) with s = 0 before step 0; x (T, B, n)."""
    c = _coefficients(op, x, values)
    zero = torch.zeros_like(x[0])
    state = None
    outs: list[torch.Tensor] = []
    for t in range(x.shape[0]):
        prev = outs[t - delay] if t >= delay else zero
        o, state = op.step_fn(x[t] + torch.nn.functional.linear(prev, weight, bias), state, c)
        outs.append(o)
    return torch.stack(outs)


_SAVED = object()  # marks a tensor input kept with save_for_backward


def _register(name: str, schema: str, run: Callable[..., torch.Tensor]) -> Any:
    """Operator n3ml::name computing run(*inputs): kernel without grad, fake, recomputing backward."""
    def kernel(*inputs: Any) -> torch.Tensor:
        with torch.no_grad():
            return run(*inputs)

    custom = torch.library.custom_op(f"{NAMESPACE}::{name}", kernel, mutates_args=(), schema=schema)
    custom.register_fake(lambda x, *rest: torch.empty_like(x))

    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        ctx.save_for_backward(*(i for i in inputs if isinstance(i, torch.Tensor)))
        ctx.others = [_SAVED if isinstance(i, torch.Tensor) else i for i in inputs]

    def backward(ctx: Any, grad: torch.Tensor) -> tuple:
        # Recompute under autograd: the gradient is exactly the Python path's (surrogate) one.
        saved = iter(ctx.saved_tensors)
        inputs = [next(saved) if o is _SAVED else o for o in ctx.others]
        leaves = []
        with torch.enable_grad():
            for k, v in enumerate(inputs):
                if isinstance(v, torch.Tensor) and ctx.needs_input_grad[k]:
                    inputs[k] = v.detach().requires_grad_(True)
                    leaves.append(k)
            out = run(*inputs)
            if leaves and out.requires_grad:
                grads = torch.autograd.grad(out, [inputs[k] for k in leaves], grad, allow_unused=True)
            else:
                grads = (None,) * len(leaves)
        result: list[Any] = [None] * len(inputs)
        for k, g in zip(leaves, grads):
            result[k] = g
        return tuple(result)

    custom.register_autograd(backward, setup_context=setup_context)
    return custom


def _register_neuron(op: NeuronOp) -> None:
    _register(op.name, op.schema(), lambda x, *values: run_sequence(op, x, values))
    rec_schema = op.schema().replace("(Tensor x, ", "(Tensor x, Tensor weight, Tensor? bias, int delay, ", 1)
    _register("recurrent_" + op.name, rec_schema,
              lambda x, w, b, delay, *values: run_recurrent(op, x, w, b, delay, values))


# ------------------------------------------------------------------ encoders


@torch.library.custom_op(f"{NAMESPACE}::poisson_rate", mutates_args=())
def poisson_rate(x: torch.Tensor, gain: float, seed: int) -> torch.Tensor:
    """PoissonRate over a whole sequence (no gradient flows through the comparison)."""
    return F.poisson_rate(x, gain, seed)


@torch.library.custom_op(f"{NAMESPACE}::constant_current", mutates_args=())
def constant_current(x: torch.Tensor, scale: float, offset: float) -> torch.Tensor:
    """ConstantCurrent: y = scale x + offset."""
    return F.constant_current(x, scale, offset)


@torch.library.custom_op(f"{NAMESPACE}::latency", mutates_args=())
def latency(x: torch.Tensor, window: int, x_min: float) -> torch.Tensor:
    """Latency (time-to-first-spike) code of a whole sequence (no gradient)."""
    return F.latency(x, window, x_min)


for _enc in (poisson_rate, constant_current, latency):
    _enc.register_fake(lambda x, *rest: torch.empty_like(x))

# the spike codes have no gradient (as their Python forms, which detach x); the current is linear
poisson_rate.register_autograd(lambda ctx, g: (None, None, None))
latency.register_autograd(lambda ctx, g: (None, None, None))


def _cc_setup(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
    ctx.scale = inputs[1]


constant_current.register_autograd(lambda ctx, g: (g * ctx.scale, None, None), setup_context=_cc_setup)

ENCODER_OPS: dict[str, Any] = {"poisson_rate": poisson_rate, "constant_current": constant_current,
                               "latency": latency}
for _op in NEURON_OPS.values():
    _register_neuron(_op)


def _op_args(op: NeuronOp, values: dict[str, Any]) -> list[Any]:
    args = []
    for n in op.args:
        v = values[n]
        if n in op.numeric and not isinstance(v, torch.Tensor):
            v = torch.tensor(float(v), dtype=torch.float64)
        args.append(v)
    return args


def neuron_op(name: str, x: torch.Tensor, values: dict[str, Any]) -> torch.Tensor:
    """Call ``torch.ops.n3ml.<name>`` with x and the fields of `values` (numbers become 0-d float64 tensors)."""
    return getattr(torch.ops.n3ml, name)(x, *_op_args(NEURON_OPS[name], values))


def recurrent_op(name: str, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, delay: int,
                 values: dict[str, Any]) -> torch.Tensor:
    """Call ``torch.ops.n3ml.recurrent_<name>``: the neuron `name` fed back through (weight, bias) after `delay`."""
    return getattr(torch.ops.n3ml, "recurrent_" + name)(x, weight, bias, delay, *_op_args(NEURON_OPS[name], values))
