"""Plain torch layers and tensor operations -> IR (synapses, structure, ANN operations).

MODULES maps a module class to its converter; FUNCTIONS and METHODS map torch
functions and tensor methods. Adding a layer is one entry.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from ...ir import prims as P
from .vocab import Context, Entry, Shape, Symbolic, Tensor


def _np(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.detach().cpu().double().numpy().copy()


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _rank(ctx: Context, x: Tensor) -> int:
    return len(ctx.shape(x))


# ----------------------------------------------------------------- modules


def linear(ctx: Context, m: nn.Linear, x: Any, *, weight: torch.Tensor | None = None) -> Tensor:
    """`weight`: the weight the layer computes with where it is not `m.weight` (a weight-standardized subclass's)."""
    x = ctx.tensor(x)
    if _rank(ctx, x) != 1:
        raise ctx.unsupported(f"Linear on per-sample shape {ctx.shape(x)}; the IR's Dense takes a flat vector "
                              "(flatten first)")
    return ctx.add(ctx.path, P.Dense(weight=_np(m.weight if weight is None else weight), bias=_np(m.bias)), x)


def _conv_padding(ctx: Context, m: nn.Module, nd: int) -> tuple[int, ...]:
    if m.padding_mode != "zeros":
        raise ctx.unsupported(f"padding_mode={m.padding_mode!r}", "padding_mode='zeros'")
    pad = m.padding
    if pad == "valid":
        return (0,) * nd
    if pad == "same":
        k = m.kernel_size
        d = m.dilation
        if any((d[i] * (k[i] - 1)) % 2 for i in range(nd)):
            raise ctx.unsupported("padding='same' with an even effective kernel (asymmetric padding)",
                                  "symmetric zero padding")
        return tuple(d[i] * (k[i] - 1) // 2 for i in range(nd))
    return tuple(int(p) for p in pad)


def conv1d(ctx: Context, m: nn.Conv1d, x: Any) -> Tensor:
    x = ctx.tensor(x)
    (pad,) = _conv_padding(ctx, m, 1)
    prim = P.Conv1d(weight=_np(m.weight), bias=_np(m.bias), stride=int(m.stride[0]), padding=pad,
                    dilation=int(m.dilation[0]), groups=int(m.groups))
    return ctx.add(ctx.path, prim, x)


def conv2d(ctx: Context, m: nn.Conv2d, x: Any, *, weight: torch.Tensor | None = None) -> Tensor:
    """`weight`: as for `linear`."""
    x = ctx.tensor(x)
    pad = _conv_padding(ctx, m, 2)
    prim = P.Conv2d(weight=_np(m.weight if weight is None else weight), bias=_np(m.bias), stride=_pair(m.stride), padding=_pair(pad),
                    dilation=_pair(m.dilation), groups=int(m.groups))
    return ctx.add(ctx.path, prim, x)


def _pool(ctx: Context, cls, x: Tensor, kernel, stride, padding, ceil_mode: bool) -> Tensor:
    if ceil_mode:
        raise ctx.unsupported("ceil_mode=True", "ceil_mode=False")
    k = _pair(kernel)
    s = k if stride is None or stride == [] or stride == () else _pair(stride)
    return ctx.add(ctx.path or cls.__name__.lower(), cls(kernel=k, stride=s, padding=_pair(padding)), x)


def avgpool2d(ctx: Context, m: nn.AvgPool2d, x: Any) -> Tensor:
    x = ctx.tensor(x)
    if not m.count_include_pad and _pair(m.padding) != (0, 0):
        raise ctx.unsupported("count_include_pad=False with padding", "count_include_pad=True or no padding")
    if m.divisor_override is not None:
        raise ctx.unsupported("divisor_override", "AvgPool2d without divisor_override")
    return _pool(ctx, P.AvgPool2d, x, m.kernel_size, m.stride, m.padding, m.ceil_mode)


def maxpool2d(ctx: Context, m: nn.MaxPool2d, x: Any) -> Tensor:
    x = ctx.tensor(x)
    if _pair(m.dilation) != (1, 1) or m.return_indices:
        raise ctx.unsupported("MaxPool2d with dilation or return_indices", "dilation=1, return_indices=False")
    return _pool(ctx, P.MaxPool2d, x, m.kernel_size, m.stride, m.padding, m.ceil_mode)


def adaptive_avg_pool2d_node(ctx: Context, x: Tensor, output_size: Any) -> Tensor:
    """Adaptive average pooling whose output size divides the input: a plain AvgPool2d (same windows)."""
    shape = ctx.shape(x)
    if len(shape) != 3:
        raise ctx.unsupported(f"adaptive_avg_pool2d of per-sample shape {shape}", "(C, H, W) inputs")
    out = _pair(output_size) if not isinstance(output_size, (tuple, list)) or None not in output_size else \
        tuple(shape[1 + i] if o is None else int(o) for i, o in enumerate(output_size))
    h, w = shape[1], shape[2]
    if (h, w) == (1, 1) and out != (1, 1):
        # a 1x1 map spread over an output grid (SpikingJelly's VGG: AdaptiveAvgPool2d((7, 7)) after the features
        # of a small image): every window is the one pixel, i.e. a depthwise Conv2d of ones whose zero padding
        # leaves exactly one tap on the pixel for each output position (exact: the other taps add 0)
        c = shape[0]
        return ctx.add(ctx.path or "avgpool", P.Conv2d(weight=np.ones((c, 1, *out)), stride=(1, 1),
                                                       padding=(out[0] - 1, out[1] - 1), groups=c), x)
    if h % out[0] or w % out[1]:
        raise ctx.unsupported(f"adaptive average pooling of {h}x{w} to {out[0]}x{out[1]} (uneven windows)",
                              "output sizes that divide the input size")
    k = (h // out[0], w // out[1])
    return ctx.add(ctx.path or "avgpool", P.AvgPool2d(kernel=k, stride=k, padding=(0, 0)), x)


def avg_pool1d_node(ctx: Context, x: Tensor, kernel: Any, output_size: Any = None, stride: Any = None) -> Tensor:
    """Average pooling over the last axis of a flat (N,) sample as a Dense layer of window means.

    The IR has no 1-d pooling; `mean_j = sum_{i in window j} x_i / k` is a Dense with weights 1/k
    (equal to torch's pooling up to float rounding of the sum: exact for voting readouts of spikes
    up to the last bit)."""
    shape = ctx.shape(x)
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[0] != 1):
        raise ctx.unsupported(f"1-d average pooling of per-sample shape {shape}", "(N,) or (1, N) samples")
    n = shape[-1]
    if output_size is not None:
        o = int(output_size[0] if isinstance(output_size, (tuple, list)) else output_size)
        if n % o:
            raise ctx.unsupported(f"adaptive average pooling of {n} to {o} (uneven windows)",
                                  "output sizes that divide the input size")
        k = s = n // o
    else:
        k = int(kernel[0] if isinstance(kernel, (tuple, list)) else kernel)
        s = k if stride is None or stride == () else int(stride[0] if isinstance(stride, (tuple, list)) else stride)
    m = (n - k) // s + 1
    w = np.zeros((m, n))
    for j in range(m):
        w[j, j * s:j * s + k] = 1.0 / k
    if len(shape) == 2:
        raise ctx.unsupported("1-d pooling of a (1, N) sample", "(N,) samples")
    return ctx.add(ctx.path or "avgpool1d", P.Dense(weight=w), x)


def adaptive_avgpool2d_module(ctx: Context, m: nn.AdaptiveAvgPool2d, x: Any) -> Tensor:
    return adaptive_avg_pool2d_node(ctx, ctx.tensor(x), m.output_size)


def avgpool1d_module(ctx: Context, m: nn.AvgPool1d, x: Any) -> Tensor:
    """nn.AvgPool1d over a flat sample (SpikingJelly's SNASNet: `boost(x.unsqueeze(1)).squeeze(1)`, the mean of
    each cluster of output neurons)."""
    if tuple(m.padding) != (0,) or m.ceil_mode:
        raise ctx.unsupported("AvgPool1d with padding or ceil_mode", "AvgPool1d(k, s) without padding")
    return avg_pool1d_node(ctx, ctx.tensor(x), m.kernel_size, None, m.stride)


def adaptive_avgpool1d_module(ctx: Context, m: nn.AdaptiveAvgPool1d, x: Any) -> Tensor:
    return avg_pool1d_node(ctx, ctx.tensor(x), None, m.output_size)


# 1-d pools read a flat sample; a unit axis the model adds for their channel (x.unsqueeze(1)) is not the sample's
avgpool1d_module.channel_axis_1d = adaptive_avgpool1d_module.channel_axis_1d = True


def flatten_dims(ctx: Context, x: Tensor, start: int, end: int, lead: int | None = None) -> Tensor:
    """torch.flatten(x, start, end) where x has `lead` leading batch/time axes."""
    lead = ctx.lead if lead is None else lead
    ndim = lead + _rank(ctx, x)
    start = start + ndim if start < 0 else start
    end = end + ndim if end < 0 else end
    if start == end or (start == lead and end == lead and _rank(ctx, x) == 1):
        return x
    if start != lead or end != ndim - 1:
        raise ctx.unsupported(f"flatten of axes {start}..{end} of a tensor with {lead} leading batch/time axes and "
                              f"per-sample shape {ctx.shape(x)}", f"flattening all per-sample axes (start_dim={lead})")
    return ctx.add(ctx.path or "flatten", P.Flatten(), x)


def flatten_module(ctx: Context, m: nn.Flatten, x: Any) -> Tensor:
    return flatten_dims(ctx, ctx.tensor(x), m.start_dim, m.end_dim)


def batchnorm(ctx: Context, m: nn.modules.batchnorm._BatchNorm, x: Any) -> Tensor:
    x = ctx.tensor(x)
    if m.running_mean is None or m.running_var is None:
        raise ctx.unsupported("BatchNorm without running statistics (track_running_stats=False)",
                              "BatchNorm with running statistics, in eval mode")
    c = m.num_features
    gamma = _np(m.weight) if m.weight is not None else np.ones(c)
    beta = _np(m.bias) if m.bias is not None else np.zeros(c)
    prim = P.BatchNorm(mean=_np(m.running_mean), var=_np(m.running_var), gamma=gamma, beta=beta, eps=float(m.eps))
    return ctx.add(ctx.path, prim, x)


def relu(ctx: Context, m: nn.Module, x: Any) -> Tensor:
    return ctx.add(ctx.path or "relu", P.ReLU(), ctx.tensor(x))


def identity(ctx: Context, m: nn.Module, x: Any, *args: Any, **kwargs: Any) -> Any:
    return x


def softmax_module(ctx: Context, m: nn.Softmax, x: Any) -> Tensor:
    x = ctx.tensor(x)
    return _softmax(ctx, x, m.dim)


def _softmax(ctx: Context, x: Tensor, dim: int | None) -> Tensor:
    ndim = ctx.lead + _rank(ctx, x)
    if dim is None:
        raise ctx.unsupported("softmax without dim", "softmax over an explicit per-sample axis")
    dim = dim + ndim if dim < 0 else dim
    if dim < ctx.lead:
        raise ctx.unsupported(f"softmax over batch/time axis {dim}", "softmax over a per-sample axis")
    return ctx.add(ctx.path or "softmax", P.Softmax(axis=dim - ctx.lead), x)


def sequential(ctx: Context, m: nn.Sequential, x: Any) -> Any:
    for name, child in m.named_children():
        x = ctx.convert_module(child, f"{ctx.path}.{name}" if ctx.path else name, x)
    return x


MODULES: dict[type, Entry] = {
    nn.Linear: Entry(linear),
    nn.Conv1d: Entry(conv1d),
    nn.Conv2d: Entry(conv2d),
    nn.AvgPool2d: Entry(avgpool2d),
    nn.MaxPool2d: Entry(maxpool2d),
    nn.Flatten: Entry(flatten_module),
    nn.BatchNorm1d: Entry(batchnorm),
    nn.BatchNorm2d: Entry(batchnorm),
    nn.ReLU: Entry(relu),
    nn.Dropout: Entry(identity),
    nn.Dropout2d: Entry(identity),
    nn.Identity: Entry(identity),
    nn.Softmax: Entry(softmax_module),
    nn.AdaptiveAvgPool2d: Entry(adaptive_avgpool2d_module),
    nn.AdaptiveAvgPool1d: Entry(adaptive_avgpool1d_module),
    nn.AvgPool1d: Entry(avgpool1d_module),
}


# ----------------------------------------------------- functions, methods


def _add(ctx: Context, a: Any, b: Any, *, alpha: Any = 1) -> Any:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a + alpha * b
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        if ctx.shape(a) != ctx.shape(b):
            raise ctx.unsupported(f"adding per-sample shapes {ctx.shape(a)} and {ctx.shape(b)} (broadcasting)",
                                  "adding tensors of equal shape")
        if alpha != 1:
            b = ctx.scale("scale", b, alpha)
        return ctx.add("add", P.Add(), a, b)
    raise ctx.unsupported("adding a constant to a traced tensor (the IR has no constant source; use a bias in a "
                          "Linear/Conv layer)", "tensor + tensor")


def _mul(ctx: Context, a: Any, b: Any) -> Any:
    if isinstance(b, Tensor) and not isinstance(a, Tensor):
        a, b = b, a
    if isinstance(a, Tensor) and not isinstance(b, (Tensor, Shape, Symbolic)):
        return ctx.scale("scale", a, b)
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        return a * b
    raise ctx.unsupported("multiplying two traced tensors", "tensor * constant")


def _sub(ctx: Context, a: Any, b: Any, *, alpha: Any = 1) -> Any:
    if isinstance(b, Tensor):
        return _add(ctx, a, ctx.scale("neg", b, -alpha))
    return _add(ctx, a, -alpha * b)


def _div(ctx: Context, a: Any, b: Any) -> Any:
    if isinstance(a, Tensor) and not isinstance(b, Tensor):
        return ctx.scale("scale", a, 1.0 / np.asarray(b, dtype=np.float64))
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        return a / b
    raise ctx.unsupported("dividing by a traced tensor", "tensor / constant")


def _neg(ctx: Context, a: Any) -> Any:
    return ctx.scale("neg", a, -1.0) if isinstance(a, Tensor) else -a


def _flatten(ctx: Context, x: Any, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    return flatten_dims(ctx, ctx.tensor(x), start_dim, end_dim)


def _reshape(ctx: Context, x: Any, *shape: Any) -> Tensor:
    x = ctx.tensor(x)
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    lead = ctx.lead
    head, tail = shape[:lead], shape[lead:]
    size = int(np.prod(ctx.shape(x)))
    keeps_lead = all(isinstance(h, Symbolic) for h in head) or (lead == 1 and len(head) == 1 and head[0] == -1
                                                                and len(tail) == 1 and tail[0] == size)
    if keeps_lead and len(tail) == 1 and tail[0] in (-1, size):
        return flatten_dims(ctx, x, lead, -1)
    if keeps_lead and tuple(tail) == ctx.shape(x):
        return x
    raise ctx.unsupported(f"reshape of per-sample shape {ctx.shape(x)} to {shape}",
                          "x.view(x.size(0), -1) / reshape that flattens the per-sample axes")


def _cat(ctx: Context, tensors: Any, dim: int = 0) -> Tensor:
    ts = [ctx.tensor(t) for t in tensors]
    ndim = ctx.lead + _rank(ctx, ts[0])
    dim = dim + ndim if dim < 0 else dim
    if dim < ctx.lead:
        raise ctx.unsupported(f"concatenation along batch/time axis {dim}", "concatenation along a per-sample axis")
    if len(ts) == 1:
        return ts[0]
    return ctx.add("cat", P.Concat(axis=dim - ctx.lead), *ts)


def _relu(ctx: Context, x: Any, inplace: bool = False) -> Tensor:
    return ctx.add("relu", P.ReLU(), ctx.tensor(x))


def _softmax_fn(ctx: Context, x: Any, dim: int | None = None, *args: Any, **kwargs: Any) -> Tensor:
    return _softmax(ctx, ctx.tensor(x), dim)


def _dropout(ctx: Context, x: Any, p: float = 0.5, training: bool = False, inplace: bool = False) -> Any:
    if training:
        raise ctx.unsupported("dropout with training=True", "dropout in eval mode (identity)")
    return x


def _size(ctx: Context, x: Any, dim: int | None = None) -> Any:
    x = ctx.tensor(x)
    if dim is None:
        return Shape(x)
    return _shape_item(ctx, Shape(x), dim)


def _shape_item(ctx: Context, s: Shape, i: Any) -> Any:
    full = ctx.lead + _rank(ctx, s.of)
    if not isinstance(i, int):
        raise ctx.unsupported(f"indexing a shape with {i!r}", "integer indices")
    i = i + full if i < 0 else i
    if i < ctx.lead:
        return Symbolic("batch" if i == ctx.lead - 1 else "time")
    return ctx.shape(s.of)[i - ctx.lead]


def _getitem(ctx: Context, obj: Any, idx: Any) -> Any:
    if isinstance(obj, Shape):
        return _shape_item(ctx, obj, idx)
    if isinstance(obj, (tuple, list)) or hasattr(obj, "_fields"):
        return obj[idx]
    if isinstance(obj, Tensor):
        raise ctx.unsupported(f"indexing/slicing a traced tensor with {idx!r}",
                              "whole tensors (no indexing along batch, time or features)")
    return obj[idx]


def _getattr(ctx: Context, obj: Any, name: str) -> Any:
    if isinstance(obj, Tensor) and name == "shape":
        return Shape(obj)
    if isinstance(obj, Tensor) and name in ("dtype", "device"):
        return Symbolic(name)  # only meaningful to casts, which the IR does not need
    if isinstance(obj, Tensor):
        raise ctx.unsupported(f"tensor attribute `.{name}`", "`.shape`, `.dtype`, `.device`")
    return getattr(obj, name)


def _same(ctx: Context, x: Any, *args: Any, **kwargs: Any) -> Any:
    return x


def _max_pool2d_fn(ctx: Context, x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                   ceil_mode: bool = False, return_indices: bool = False) -> Tensor:
    if return_indices or _pair(dilation) != (1, 1):
        raise ctx.unsupported("max_pool2d with dilation or return_indices", "dilation=1, return_indices=False")
    return _pool(ctx, P.MaxPool2d, ctx.tensor(x), kernel_size, stride, padding, ceil_mode)


def _avg_pool2d_fn(ctx: Context, x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
                   ceil_mode: bool = False, count_include_pad: bool = True, divisor_override: Any = None) -> Tensor:
    if divisor_override is not None or (not count_include_pad and _pair(padding) != (0, 0)):
        raise ctx.unsupported("avg_pool2d with divisor_override, or count_include_pad=False with padding",
                              "plain average pooling")
    return _pool(ctx, P.AvgPool2d, ctx.tensor(x), kernel_size, stride, padding, ceil_mode)


def _adaptive_avg_pool2d_fn(ctx: Context, x: Any, output_size: Any) -> Tensor:
    return adaptive_avg_pool2d_node(ctx, ctx.tensor(x), output_size)


FUNCTIONS: dict[Any, Any] = {
    F.max_pool2d: _max_pool2d_fn, torch.max_pool2d: _max_pool2d_fn,
    F.avg_pool2d: _avg_pool2d_fn, torch.nn.functional.adaptive_avg_pool2d: _adaptive_avg_pool2d_fn,
    operator.add: _add, torch.add: _add, operator.iadd: _add,
    operator.sub: _sub, torch.sub: _sub,
    operator.mul: _mul, torch.mul: _mul,
    operator.truediv: _div, torch.div: _div,
    operator.neg: _neg, torch.neg: _neg,
    operator.getitem: _getitem,
    getattr: _getattr,
    torch.flatten: _flatten,
    torch.reshape: _reshape,
    torch.cat: _cat, torch.concat: _cat,
    torch.relu: _relu, F.relu: _relu,
    torch.softmax: _softmax_fn, F.softmax: _softmax_fn,
    F.dropout: _dropout,
}

METHODS: dict[str, Any] = {
    "add": _add, "__add__": _add, "sub": _sub, "mul": _mul, "div": _div, "neg": _neg,
    "flatten": _flatten, "view": _reshape, "reshape": _reshape,
    "relu": _relu, "softmax": _softmax_fn, "size": _size,
    # dtype/device casts: the IR computes in float64 (interpreter) or the executor's dtype
    "contiguous": _same, "detach": _same, "clone": _same, "float": _same, "double": _same, "to": _same,
    "type_as": _same,
}


def call(ctx: Context, node: fx.Node, args: tuple, kwargs: dict) -> Any:
    """Convert one call_function / call_method node."""
    if node.op == "call_method":
        fn = METHODS.get(node.target)
        label = f"tensor method `.{node.target}()`"
        names = sorted(METHODS)
    else:
        fn = FUNCTIONS.get(node.target)
        label = f"function `{getattr(node.target, '__module__', '')}.{getattr(node.target, '__name__', node.target)}`"
        names = sorted({getattr(f, "__name__", str(f)) for f in FUNCTIONS})
    if fn is None:
        if node.op == "call_function" and not any(isinstance(a, Tensor) for a in _flat(args, kwargs)):
            return node.target(*args, **kwargs)  # constant folding of plain Python values
        raise ctx.unsupported(f"{label} is not supported", ", ".join(names))
    return fn(ctx, *args, **kwargs)


def _flat(args: tuple, kwargs: dict) -> list[Any]:
    out: list[Any] = []
    for a in list(args) + list(kwargs.values()):
        if isinstance(a, (tuple, list)):
            out.extend(a)
        else:
            out.append(a)
    return out
