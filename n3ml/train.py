"""A small trainer for n3ml.nn models: epochs, metrics, safe checkpoints, resume, DDP.

One process::

    trainer = Trainer(model, torch.optim.Adam(model.parameters(), 1e-3), inputs=lambda x: repeat_time(x, 8))
    history = trainer.fit(train_set, epochs=20, batch_size=64, val_data=test_set)

Several processes (data parallel, `torch.distributed` DDP)::

    torchrun --nproc_per_node 4 train.py      # train.py calls init_distributed() first

Under torchrun the same script runs once per process; `init_distributed()` joins the
process group (nccl when the process has a GPU, gloo otherwise) and returns the device
to use; the Trainer then wraps the model in DDP and reduces the metrics over all
processes. Only rank 0 writes checkpoints and shows the progress bar.

`batch_size` is the *global* batch: every epoch is one permutation of the data seeded by
(seed, epoch), cut into global batches of `batch_size` samples, and each process takes
its contiguous share of every global batch. Each process scales its loss by its share of
the batch, so DDP's gradient average is the gradient of the loss over the global batch:
the same optimizer steps as one process with that batch (up to the order of float
additions; tests/train/test_ddp.py), whatever the number of processes. That is also what
makes a checkpoint resumable with a different number of processes.

Checkpoints are a plain dict of tensors (``torch.load(..., weights_only=True)`` reads
them, no pickled code) next to a JSON file with the metadata (epoch, metrics, user
metadata such as the model's constructor arguments).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset, default_collate

from .errors import N3mlError

log = logging.getLogger(__name__)

__all__ = ["Trainer", "EpochMetrics", "init_distributed", "close_distributed", "mean_over_time",
           "load_checkpoint", "save_checkpoint"]

CHECKPOINT_VERSION = 1


@dataclass
class EpochMetrics:
    """Metrics of one epoch, averaged over all samples of all processes."""

    epoch: int
    loss: float
    accuracy: float
    val_loss: float | None = None
    val_accuracy: float | None = None
    seconds: float = 0.0
    lr: float | None = None


def mean_over_time(out: torch.Tensor) -> torch.Tensor:
    """Default readout: a (T, B, C) output becomes logits (B, C) by averaging over time."""
    return out.mean(0) if out.ndim == 3 else out


# ---------------------------------------------------------------- distributed


def init_distributed(backend: str | None = None) -> tuple[int, int, torch.device]:
    """Join the process group described by torchrun's environment; return (rank, world_size, device).

    Without torchrun's variables (``WORLD_SIZE`` unset or 1) nothing is initialised and the
    result is ``(0, 1, device)``. The backend defaults to nccl when CUDA is available, gloo
    otherwise; each process uses the GPU numbered by ``LOCAL_RANK``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", local % torch.cuda.device_count()) if cuda else torch.device("cpu")
    if world <= 1:
        return 0, 1, device
    if not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(device)
        dist.init_process_group(backend or ("nccl" if cuda else "gloo"))
    return dist.get_rank(), dist.get_world_size(), device


def close_distributed() -> None:
    """Leave the process group (call once at the end of a torchrun script)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _ddp() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


# ----------------------------------------------------------------- checkpoints


def save_checkpoint(path: str | Path, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
    """Write `path` (.pt, tensors only) and `path` with suffix .json (metadata), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(tensors, tmp)
    os.replace(tmp, path)
    jtmp = path.with_suffix(".json.tmp")
    jtmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    os.replace(jtmp, path.with_suffix(".json"))


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a checkpoint written by `save_checkpoint`: (tensors, metadata). Never unpickles code."""
    path = Path(path)
    if not path.is_file():
        raise N3mlError(f"{path}: no such checkpoint")
    try:
        tensors = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a corrupt or foreign file: say which
        raise N3mlError(f"{path}: not a readable weights-only checkpoint ({e})") from None
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    return tensors, meta


# --------------------------------------------------------------------- trainer


class Trainer:
    """Trains `model` by minimising `loss_fn(readout(model(inputs(x))), y)` over a dataset of (x, y).

    Args:
        model: a torch module; DDP-wrapped automatically when a process group is initialised.
        optimizer: built over ``model.parameters()``.
        loss_fn: ``(logits, targets) -> loss``, a mean over the batch; default cross-entropy.
        inputs: maps a collated batch x (B, ...) to the model's input, e.g. ``repeat_time(x, T)``.
        readout: maps the model's output to logits (B, C); default `mean_over_time`.
        scheduler: optional LR scheduler stepped once per epoch.
        device: where to train; default the device of the model's parameters.
        checkpoint: file (.pt) rewritten after every epoch (plus a .json beside it); None: none.
        metadata: JSON-able user data saved in the checkpoint metadata (e.g. the model arguments).
        progress: show a tqdm bar (rank 0 only).
        seed: seeds the per-epoch shuffling, so a resumed run sees the same batches.
        grad_clip: clip the gradient norm to this value (None: no clipping).
        on_epoch: called with each epoch's EpochMetrics on rank 0 (e.g. to print them).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, *,
                 loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 inputs: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 readout: Callable[[torch.Tensor], torch.Tensor] = mean_over_time,
                 scheduler: Any = None, device: str | torch.device | None = None,
                 checkpoint: str | Path | None = None, metadata: dict[str, Any] | None = None,
                 progress: bool = True, seed: int = 0, grad_clip: float | None = None,
                 on_epoch: Callable[[EpochMetrics], None] | None = None):
        self.rank, self.world = _ddp()
        if device is None:
            p = next(iter(model.parameters()), None)
            device = p.device if p is not None else torch.device("cpu")
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.net: nn.Module = model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        self.optimizer = optimizer
        self.loss_fn = loss_fn or nn.functional.cross_entropy
        self.inputs = inputs or (lambda x: x)
        self.readout = readout
        self.scheduler = scheduler
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.metadata = dict(metadata or {})
        self.progress = progress
        self.seed = seed
        self.grad_clip = grad_clip
        self.on_epoch = on_epoch
        self.epoch = 0  # epochs completed
        self.history: list[EpochMetrics] = []

    # ----------------------------------------------------------------- data
    def _global_batches(self, n: int, batch_size: int) -> list[torch.Tensor]:
        """This epoch's global batches of sample indices: the same on every process and for any world size."""
        if batch_size < 1:
            raise N3mlError(f"Trainer: batch_size (the global batch) must be >= 1, found {batch_size}")
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        return list(torch.randperm(n, generator=g).split(batch_size))

    def _share(self, batch: torch.Tensor) -> torch.Tensor:
        """This process's contiguous share of a global batch (shares differ by at most one sample)."""
        return torch.tensor_split(batch, self.world)[self.rank]

    def _loader(self, data: Dataset, batch_size: int) -> DataLoader:
        # evaluation: disjoint shards without padding, so every sample counts exactly once
        shard = Subset(data, range(self.rank, len(data), self.world))
        return DataLoader(shard, batch_size=batch_size, shuffle=False)

    def _reduce(self, *values: float) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        if self.world > 1:
            dist.all_reduce(t)
        return t.tolist()

    # ----------------------------------------------------------------- steps
    def _forward(self, x: torch.Tensor, y: torch.Tensor, net: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = x.to(self.device), y.to(self.device)
        logits = self.readout(net(self.inputs(x)))
        return self.loss_fn(logits, y), (logits.argmax(-1) == y).sum()

    @staticmethod
    def _collate(data: Dataset, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return default_collate([data[i] for i in idx.tolist()])

    def train_epoch(self, data: Dataset, batch_size: int) -> tuple[float, float]:
        """One pass over `data` in global batches of `batch_size`; return (mean loss, accuracy) over all processes."""
        self.net.train()
        batches = self._global_batches(len(data), batch_size)
        bar = self._bar(batches, f"epoch {self.epoch + 1}")
        tot_loss, correct, count = 0.0, 0, 0
        for batch in bar:
            mine = self._share(batch)
            # a process whose share is empty (a last global batch smaller than the world) still
            # joins DDP's gradient all-reduce: it runs one sample with weight 0
            n = len(mine)
            x, y = self._collate(data, mine if n else batch[:1])
            self.optimizer.zero_grad(set_to_none=True)
            loss, ok = self._forward(x, y, self.net)
            # loss_fn is a mean over its samples; DDP averages the processes' gradients, so the
            # factor world * n / len(batch) turns that average into the global batch's mean
            (loss * (self.world * n / len(batch))).backward()
            if self.grad_clip is not None:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            self.optimizer.step()
            if n:
                tot_loss += float(loss.detach()) * n
                correct += int(ok)
                count += n
            if hasattr(bar, "set_postfix") and count:
                bar.set_postfix(loss=f"{tot_loss / count:.4f}", acc=f"{correct / count:.3f}")
        tot_loss, correct, count = self._reduce(tot_loss, correct, count)
        return tot_loss / max(count, 1), correct / max(count, 1)

    @torch.no_grad()
    def evaluate(self, data: Dataset, batch_size: int = 256) -> tuple[float, float]:
        """Mean loss and accuracy of the model on `data`, over all processes."""
        self.model.eval()
        tot_loss, correct, count = 0.0, 0, 0
        for x, y in self._loader(data, batch_size):
            loss, ok = self._forward(x, y, self.model)  # no DDP: evaluation needs no gradient sync
            tot_loss += float(loss) * len(y)
            correct += int(ok)
            count += len(y)
        tot_loss, correct, count = self._reduce(tot_loss, correct, count)
        return tot_loss / max(count, 1), correct / max(count, 1)

    def _bar(self, loader: Iterable, desc: str) -> Iterable:
        if not self.progress or self.rank != 0:
            return loader
        from tqdm.auto import tqdm

        return tqdm(loader, desc=desc, leave=False, dynamic_ncols=True)

    # ------------------------------------------------------------------ fit
    def fit(self, data: Dataset, epochs: int, *, batch_size: int = 64, val_data: Dataset | None = None,
            resume: bool = False) -> list[EpochMetrics]:
        """Train until `epochs` epochs are completed in total (a resumed run continues the count).

        Args:
            data: training samples (x, y), the whole set in every process.
            epochs: total number of epochs.
            batch_size: the global batch (samples per optimizer step over all processes);
                each process computes its share of it.
            val_data: evaluated after every epoch when given.
            resume: continue from `checkpoint` if that file exists.
        Returns:
            The metrics of every epoch so far (including those before a resume).
        """
        if resume and self.checkpoint is not None and self.checkpoint.is_file():
            self.load(self.checkpoint)
        while self.epoch < epochs:
            t0 = time.perf_counter()
            loss, acc = self.train_epoch(data, batch_size)
            m = EpochMetrics(epoch=self.epoch + 1, loss=loss, accuracy=acc,
                             lr=self.optimizer.param_groups[0].get("lr"))
            if val_data is not None:
                m.val_loss, m.val_accuracy = self.evaluate(val_data, max(batch_size, 256))
            if self.scheduler is not None:
                self.scheduler.step()
            self.epoch += 1
            m.seconds = time.perf_counter() - t0
            if not math.isfinite(loss):
                raise N3mlError(f"training diverged at epoch {m.epoch}: loss is {loss}")
            self.history.append(m)
            log.info("epoch %d: %s", m.epoch, m)
            if self.checkpoint is not None:
                self.save(self.checkpoint)
            if self.on_epoch is not None and self.rank == 0:
                self.on_epoch(m)
        return self.history

    # ----------------------------------------------------------- checkpoints
    def save(self, path: str | Path) -> None:
        """Write model, optimizer (and scheduler) state plus JSON metadata (rank 0; others wait)."""
        if self.rank == 0:
            tensors: dict[str, Any] = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                                       "rng": torch.get_rng_state()}
            if self.scheduler is not None:
                tensors["scheduler"] = self.scheduler.state_dict()
            meta = {"version": CHECKPOINT_VERSION, "epoch": self.epoch, "world_size": self.world,
                    "seed": self.seed, "model_class": f"{type(self.model).__module__}:{type(self.model).__qualname__}",
                    "history": [asdict(h) for h in self.history], "metadata": self.metadata}
            save_checkpoint(path, tensors, meta)
        if self.world > 1:
            dist.barrier()

    def load(self, path: str | Path) -> dict[str, Any]:
        """Restore a checkpoint written by `save` (weights-only load); return its metadata."""
        tensors, meta = load_checkpoint(path, map_location=self.device)
        missing = [k for k in ("model", "optimizer") if k not in tensors]
        if missing:
            raise N3mlError(f"{path}: checkpoint lacks {missing}; found keys {sorted(tensors)}")
        self.model.load_state_dict(tensors["model"])
        self.optimizer.load_state_dict(tensors["optimizer"])
        if self.scheduler is not None and "scheduler" in tensors:
            self.scheduler.load_state_dict(tensors["scheduler"])
        if "rng" in tensors:
            torch.set_rng_state(tensors["rng"].cpu())
        self.epoch = int(meta.get("epoch", 0))
        self.history = [EpochMetrics(**h) for h in meta.get("history", [])]
        return meta
