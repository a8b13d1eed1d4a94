"""The digits STBP network (examples/learning/stbp_digits.py, 64-128-10, T = 8) on a small part of the digits,
shared by the multi-process tests (tests/train/test_ddp.py) and their torchrun worker."""

from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from n3ml.learn.data import load_split
from n3ml.learn.stbp import STBPNet, rate_mse
from n3ml.train import Trainer

# 121 samples in global batches of 30: the last global batch has one sample, so with two
# processes one of them has an empty share in every epoch (the case DDP must still join)
N_TRAIN, BATCH, EPOCHS = 121, 30, 3


def digits_data() -> TensorDataset:
    d = load_split("digits", test_size=0.25, seed=0)
    x = torch.tensor(d.x_train[:N_TRAIN], dtype=torch.float64)
    return TensorDataset(x, torch.tensor(d.y_train[:N_TRAIN]))


def make_trainer(checkpoint: Path | None, device: str | torch.device = "cpu") -> tuple[Trainer, STBPNet]:
    """Float64 (a surrogate-gradient net flips a spike when u sits within rounding of V_th: float64 makes
    the different order of the all-reduce's additions harmless) with Adam and a cosine schedule, so the
    checkpoint carries optimizer and scheduler state."""
    torch.manual_seed(0)
    net = STBPNet([64, 128, 10], steps=8).double()
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, EPOCHS)
    return Trainer(net, opt, loss_fn=rate_mse, scheduler=sched, checkpoint=checkpoint, progress=False,
                   seed=5, device=device), net
