"""Model classes that the loader tests name with --model tests.frontends.models:ClassName."""

from __future__ import annotations

from torch import nn

import n3ml.nn as snn


class SpikingMLP(nn.Module):
    """An n3ml.nn MLP over sequences (T, B, n_in)."""

    def __init__(self, n_in: int = 6, hidden: int = 8, n_out: int = 3):
        super().__init__()
        self.fc1, self.lif1 = nn.Linear(n_in, hidden), snn.LIF(tau=5.0, theta=0.3)
        self.fc2, self.lif2 = nn.Linear(hidden, n_out), snn.LIF(tau=5.0, theta=0.3)

    def forward(self, x):
        return self.lif2(self.fc2(self.lif1(self.fc1(x))))


def ann() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Dropout(), nn.Linear(3 * 4 * 4, 4)).eval()
