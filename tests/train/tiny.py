"""A tiny spiking classification problem shared by the trainer tests."""

import torch
from torch.utils.data import TensorDataset

import n3ml.nn as snn

STEPS = 6


def tiny_data(n: int, seed: int) -> TensorDataset:
    """Two Gaussian blobs in 8 dimensions, labels 0/1."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    centers = torch.stack([torch.full((8,), 0.2), torch.full((8,), 0.8)])
    x = centers[y] + 0.15 * torch.randn(n, 8, generator=g)
    return TensorDataset(x, y)


class TinySNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(8, 16)
        self.lif = snn.LIF(tau=4.0, r=5.0)
        self.fc2 = torch.nn.Linear(16, 2)
        self.out = snn.LI(tau=5.0)

    def forward(self, x):  # x (B, 8): static input repeated over time
        return self.out(self.fc2(self.lif(self.fc1(snn.repeat_time(x, STEPS)))))


def tiny_model() -> TinySNN:
    return TinySNN()
