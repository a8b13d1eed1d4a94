"""Model files -> IR graphs: .pt2 (torch.export), TorchScript, state_dicts, and (opt-in) pickled modules.

Registered in n3ml.registry.LOADERS for .pt2, .pt, .pth and .ts. A loader takes
``(path, **options)`` with options input_shape, dt, steps, model, model_args,
unsafe_allow_pickle (and scheme, input_kind).

Safety: every file is read once into memory and checked by `safe_load` (zip CRCs, every member torch
would unpickle, execute or import) before torch sees those same bytes; everything but the explicit
``unsafe_allow_pickle=True`` path unpickles with ``weights_only=True`` only. docs/security.md says why
torch's own loaders are not enough.
"""

from __future__ import annotations

import importlib
import io
import json
import logging
import os
import pickle
import re
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...errors import N3mlError
from ...ir import Graph
from . import safe_load
from .trace import trace

log = logging.getLogger(__name__)


def _shape(path: str, input_shape: Any) -> tuple[int, ...]:
    if input_shape is None:
        raise N3mlError(f"{path}: a PyTorch model needs --input-shape (the per-sample input shape without batch "
                        "or time axes, e.g. --input-shape 1,28,28)")
    if isinstance(input_shape, str):
        try:
            return tuple(int(s) for s in input_shape.replace("x", ",").split(",") if s.strip())
        except ValueError:
            raise N3mlError(f"--input-shape must be comma-separated sizes like 1,28,28, found {input_shape!r}") \
                from None
    return tuple(int(s) for s in input_shape)


def _name(path: str) -> str:
    return Path(path).name.split(".")[0] or "main"


def _trace(module: nn.Module, path: str, shape: tuple[int, ...], dt: float | None, scheme: str | None,
           input_kind: str) -> Graph:
    try:
        return trace(module, shape, dt=dt, scheme=scheme, name=_name(path), input_kind=input_kind)
    except N3mlError as e:
        raise type(e)(f"{path} (input shape {shape}): {e}") from None


def instantiate(spec: str, model_args: Any = None) -> nn.Module:
    """Build ``package.module:ClassName(**model_args)``; model_args is a JSON object (str or dict)."""
    mod, sep, cls_name = spec.partition(":")
    if not sep or not mod or not cls_name:
        raise N3mlError(f"--model must be package.module:ClassName, found {spec!r}")
    if isinstance(model_args, str):
        try:
            model_args = json.loads(model_args)
        except json.JSONDecodeError as e:
            raise N3mlError(f"--model-args is not valid JSON: {e}") from None
    model_args = model_args or {}
    if not isinstance(model_args, dict):
        raise N3mlError(f"--model-args must be a JSON object of keyword arguments, found {type(model_args).__name__}")
    if os.getcwd() not in sys.path:  # like `python -m`: the user's own package in the working directory
        sys.path.insert(0, os.getcwd())
    model_args = {k: _object_arg(spec, k, v) for k, v in model_args.items()}
    try:
        cls = getattr(importlib.import_module(mod), cls_name)
    except (ImportError, AttributeError) as e:
        raise N3mlError(f"--model {spec}: cannot import it ({e})") from None
    try:
        return cls(**model_args)
    except TypeError as e:
        raise N3mlError(f"--model {spec}: cannot construct it with --model-args {json.dumps(model_args)}: "
                        f"{e}") from None


# "package.module:Name" (or "...:Name()") in --model-args: the object it names (or an instance of it), so that
# zoo factories taking a neuron class or a surrogate (SpikingJelly's spiking_neuron=neuron.IFNode,
# surrogate_function=surrogate.ATan()) can be built from the command line
_OBJECT_ARG = re.compile(r"^([A-Za-z_][\w.]*):([A-Za-z_][\w.]*)(\(\))?$")


def _object_arg(spec: str, key: str, value: Any) -> Any:
    m = _OBJECT_ARG.match(value) if isinstance(value, str) else None
    if m is None:
        return value
    mod, attr, call = m.groups()
    try:
        obj = importlib.import_module(mod)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise N3mlError(f"--model {spec}: --model-args {key}={value!r} names no importable object ({e})") from None
    if not call:
        return obj
    try:
        return obj()
    except Exception as e:  # a constructor that needs arguments
        raise N3mlError(f"--model {spec}: --model-args {key}={value!r}: cannot call it without arguments: "
                        f"{type(e).__name__}: {e}") from None


def _state_dict(obj: Any, path: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
        if all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
            return obj
    raise N3mlError(f"{path}: expected a state_dict (a dict of tensors), found {type(obj).__name__}")


def _torch_load_safe(path: str, data: bytes) -> Any:
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise N3mlError(
            f"{path}: the file holds pickled Python objects (a whole saved module?), which n3ml does not unpickle by "
            "default because that can run arbitrary code. Save a state_dict and pass --model package.module:Class, "
            "save TorchScript or a torch.export .pt2 file, or pass --unsafe-allow-pickle if you trust the file. "
            f"({str(e).splitlines()[0]})") from None
    # IndexError: torch's C++ zip reader turns std::out_of_range (stoull on a corrupt record) into one
    except (RuntimeError, EOFError, OSError, ValueError, IndexError, zipfile.BadZipFile) as e:
        raise N3mlError(f"{path}: not a readable PyTorch file (corrupt or truncated?): {e}") from None


def load_torch(path: str, *, input_shape: Any = None, dt: float | None = None, steps: int | None = None,
               model: str | None = None, model_args: Any = None, unsafe_allow_pickle: bool = False,
               scheme: str | None = None, input_kind: str = "analog", **_: Any) -> Graph:
    """Load a .pt/.pth/.ts file: TorchScript, a state_dict (with `model`), or a pickled module (opt-in)."""
    data = safe_load.read_file(path)
    # torch.save writes a zip (checked, CRCs included); the pre-1.6 format has no checksums to verify
    members = safe_load.zip_members(path, data) if safe_load.is_zip(data) else {}
    if safe_load.is_torchscript(members):
        return load_torchscript(path, input_shape=input_shape, dt=dt, scheme=scheme, input_kind=input_kind,
                                _data=data)
    if model:
        module = instantiate(model, model_args)
        sd = _state_dict(_torch_load_safe(path, data), path)
        try:
            module.load_state_dict(sd, strict=True)
        except RuntimeError as e:
            raise N3mlError(f"{path}: the state_dict does not fit --model {model}: {e}") from None
        return _trace(module, path, _shape(path, input_shape), dt, scheme, input_kind)
    if unsafe_allow_pickle:
        log.warning("%s: unpickling with weights_only=False (--unsafe-allow-pickle): this runs any code the file "
                    "contains; only do this with files you trust", path)
        try:
            obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
        except Exception as e:  # a corrupt pickle can raise nearly anything
            raise N3mlError(f"{path}: cannot unpickle it: {type(e).__name__}: {e}") from None
        if not isinstance(obj, nn.Module):
            raise N3mlError(f"{path}: expected a pickled torch.nn.Module, found {type(obj).__name__}"
                            + ("; for a state_dict pass --model package.module:Class" if isinstance(obj, dict) else ""))
        return _trace(obj, path, _shape(path, input_shape), dt, scheme, input_kind)
    obj = _torch_load_safe(path, data)
    if isinstance(obj, dict):
        raise N3mlError(f"{path}: this is a state_dict (weights only); pass --model package.module:ClassName "
                        "[--model-args JSON] to say which model it belongs to")
    raise N3mlError(f"{path}: expected TorchScript, a state_dict or a pickled module, found {type(obj).__name__}")


# ---------------------------------------------------------------- TorchScript

# TorchScript keeps each submodule's class name and, for scripted modules, its constants; plain layers
# are rebuilt as ordinary torch modules from them and then traced like any other model.
_REBUILD: dict[str, Any] = {
    "Linear": lambda s: _with_params(nn.Linear(s.in_features, s.out_features, bias=s.bias is not None), s),
    "Conv1d": lambda s: _with_params(nn.Conv1d(s.in_channels, s.out_channels, s.kernel_size, s.stride, s.padding,
                                               s.dilation, s.groups, s.bias is not None, s.padding_mode), s),
    "Conv2d": lambda s: _with_params(nn.Conv2d(s.in_channels, s.out_channels, s.kernel_size, s.stride, s.padding,
                                               s.dilation, s.groups, s.bias is not None, s.padding_mode), s),
    "BatchNorm1d": lambda s: _with_params(nn.BatchNorm1d(s.num_features, s.eps, s.momentum, s.affine,
                                                         s.track_running_stats), s),
    "BatchNorm2d": lambda s: _with_params(nn.BatchNorm2d(s.num_features, s.eps, s.momentum, s.affine,
                                                         s.track_running_stats), s),
    "MaxPool2d": lambda s: nn.MaxPool2d(s.kernel_size, s.stride, s.padding, s.dilation, s.return_indices,
                                        s.ceil_mode),
    "AvgPool2d": lambda s: nn.AvgPool2d(s.kernel_size, s.stride, s.padding, s.ceil_mode, s.count_include_pad,
                                        s.divisor_override),
    "Flatten": lambda s: nn.Flatten(s.start_dim, s.end_dim),
    "ReLU": lambda s: nn.ReLU(),
    "Dropout": lambda s: nn.Dropout(),
    "Identity": lambda s: nn.Identity(),
    "Softmax": lambda s: nn.Softmax(s.dim),
}


def _with_params(m: nn.Module, s: Any) -> nn.Module:
    sd = {k: v for k, v in s.state_dict().items()}
    m.load_state_dict(sd, strict=True)
    return m


def _rebuild(sm: Any, path: str, where: str) -> nn.Module:
    kind = sm.original_name
    if kind == "Sequential":
        return nn.Sequential(*[_rebuild(c, path, f"{where}.{n}" if where else n) for n, c in sm.named_children()])
    fn = _REBUILD.get(kind)
    if fn is None:
        raise N3mlError(f"{path}: TorchScript module `{where or '(root)'}` is a {kind}; n3ml reads TorchScript "
                        f"nn.Sequential models of {', '.join(sorted(_REBUILD))} (save other models as a .pt2 "
                        "export or as a state_dict with --model)")
    try:
        return fn(sm)
    except (AttributeError, RuntimeError) as e:
        raise N3mlError(f"{path}: TorchScript module `{where or '(root)'}` ({kind}) lacks its settings ({e}); "
                        "a traced module loses them: script it with torch.jit.script, or export a .pt2") from None


def load_torchscript(path: str, *, input_shape: Any = None, dt: float | None = None, scheme: str | None = None,
                     input_kind: str = "analog", _data: bytes | None = None, **_: Any) -> Graph:
    data = safe_load.read_file(path) if _data is None else _data
    safe_load.check_torchscript(path, data)  # before torch.jit.load, which runs scripted __setstate__ code
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript; it still reads
            sm = torch.jit.load(io.BytesIO(data), map_location="cpu")
    except Exception as e:  # torch.jit raises RuntimeError/ValueError/OSError variants for bad archives
        raise N3mlError(f"{path}: not a readable TorchScript file (corrupt or truncated?): "
                        f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    module = _rebuild(sm, path, "")
    return _trace(module, path, _shape(path, input_shape), dt, scheme, input_kind)


def load_ts(path: str, **options: Any) -> Graph:
    """`.ts`: always TorchScript."""
    return load_torchscript(path, **options)


# ----------------------------------------------------------------- torch.export


def load_pt2(path: str, *, input_shape: Any = None, dt: float | None = None, scheme: str | None = None,
             input_kind: str = "analog", **_: Any) -> Graph:
    """A torch.export ExportedProgram (ATen layers, and n3ml.nn neurons as torch.ops.n3ml operators)."""
    from .export import trace_exported  # imports n3ml.nn, which registers torch.ops.n3ml before the load

    data = safe_load.read_file(path)
    safe_load.check_pt2(path, data)  # torch.export.load itself unpickles, evals and imports from the file
    quiet = logging.getLogger("torch.export")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # torch.export logs a traceback before raising on a bad archive
    try:
        with safe_load.weights_only_torch_load():
            ep = torch.export.load(io.BytesIO(data))  # the bytes just checked, not the file again
    except Exception as e:  # corrupt archives raise various errors
        raise N3mlError(f"{path}: not a readable torch.export (.pt2) file (corrupt or truncated?): "
                        f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    finally:
        quiet.setLevel(level)
    return trace_exported(ep, path, input_shape=None if input_shape is None else _shape(path, input_shape), dt=dt,
                          scheme=scheme, input_kind=input_kind, name=_name(path))
