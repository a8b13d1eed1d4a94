"""Train three small digits ANNs in PyTorch and export them to ONNX for ANN-to-SNN conversion.

    .venv/bin/python examples/ann_to_snn/train.py            # writes cnn.onnx, residual.onnx, concat.onnx
                                                             # and calib.npz / test.npz next to this file

* cnn:      Conv-BN-ReLU-MaxPool x2, Linear-ReLU, Dropout, Linear, Softmax
* residual: Conv-BN-ReLU, then a residual block (Conv-BN + skip, Add, ReLU), MaxPool, Linear
* concat:   two parallel Conv-BN-ReLU branches (3x3 and 1x1) joined by Concat, MaxPool, Linear

Then convert, e.g.:
    n3ml convert examples/ann_to_snn/cnn.onnx --target ir -o out/ \
        -p "fold-batchnorm,ann-to-snn,normalize{percentile=99.9}" --calibration examples/ann_to_snn/calib.npz
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from data import calibration, split  # noqa: E402


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 10))

    def forward(self, x):
        return self.head(self.features(x))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                   nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.relu = nn.ReLU()
        self.head = nn.Sequential(nn.MaxPool2d(2), nn.Flatten(), nn.Linear(128, 10))

    def forward(self, x):
        h = self.stem(x)
        return self.head(self.relu(self.block(h) + h))


class Concat(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(1, 4, 1), nn.BatchNorm2d(4), nn.ReLU())
        self.mix = nn.Sequential(nn.Conv2d(10, 12, 3, padding=1), nn.BatchNorm2d(12), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(12 * 16, 10))

    def forward(self, x):
        return self.head(self.mix(torch.cat([self.a(x), self.b(x)], dim=1)))


class _WithSoftmax(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.softmax(self.net(x), dim=1)


MODELS = {"cnn": CNN, "residual": Residual, "concat": Concat}


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int = 40, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(xt), generator=g).split(64):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        sched.step()
    return model.eval()


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def export(model: nn.Module, path: Path) -> None:
    """ONNX export with the TorchScript exporter (dynamo=False: the dynamo exporter needs onnxscript).

    do_constant_folding=False keeps BatchNormalization nodes (the exporter would otherwise fuse them
    into the convolutions, leaving nothing for fold-batchnorm to do); Softmax is appended so the
    model outputs class probabilities, as deployed classifiers do.
    """
    full = _WithSoftmax(model).eval()
    torch.onnx.export(full, (torch.zeros(1, 1, 8, 8),), str(path), dynamo=False, opset_version=13,
                      input_names=["x"], output_names=["probs"], do_constant_folding=False,
                      dynamic_axes={"x": {0: "batch"}, "probs": {0: "batch"}})


def main() -> None:
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    torch.set_num_threads(1)
    x_tr, x_te, y_tr, y_te = split()
    np.savez_compressed(HERE / "calib.npz", **calibration(x_tr, y_tr))
    np.savez_compressed(HERE / "test.npz", x=x_te, labels=y_te)
    for name, cls in MODELS.items():
        torch.manual_seed(0)
        model = train(cls(), x_tr, y_tr)
        export(model, HERE / f"{name}.onnx")
        print(f"{name}: ANN test accuracy {accuracy(model, x_te, y_te):.4f} "
              f"({(HERE / f'{name}.onnx').stat().st_size / 1024:.1f} KB)")


if __name__ == "__main__":
    main()
