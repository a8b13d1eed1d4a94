"""STBP (Wu et al. 2018) on scikit-learn digits, trained with n3ml.train.Trainer.

    .venv/bin/python examples/learning/stbp_digits.py [--epochs 20] [--steps 8]

64-128-10 network of the paper's iterative LIF (k_tau = 0.5, V_th = 0.5, reset to
0), rectangular surrogate of width a = 1, loss = MSE between output rates and the
one-hot label, Adam. The pixel scale is fitted on the training part (75/25
split); the test set is used once, at the end. The trained network is then
converted to an IR graph and run by the torch executor (n3ml.backends.torch) to
show the converted graph reproduces the model's test predictions.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.utils.data import TensorDataset

from n3ml.backends.torch import run as torch_run
from n3ml.learn.data import load_split
from n3ml.learn.stbp import STBPNet, rate_mse
from n3ml.train import Trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    d = load_split("digits", test_size=0.25, seed=args.seed)
    net = STBPNet([64, 128, 10], steps=args.steps).to(args.device)
    train = TensorDataset(torch.tensor(d.x_train), torch.tensor(d.y_train))
    test = TensorDataset(torch.tensor(d.x_test), torch.tensor(d.y_test))
    trainer = Trainer(net, torch.optim.Adam(net.parameters(), 1e-3), loss_fn=rate_mse, seed=args.seed,
                      progress=True, on_epoch=lambda m: print(f"epoch {m.epoch}: loss {m.loss:.4f} "
                                                             f"train acc {m.accuracy:.3f}"))
    trainer.fit(train, args.epochs, batch_size=32)
    _, acc = trainer.evaluate(test)
    t_train = time.perf_counter() - t0
    print(f"STBP digits test accuracy: {acc:.4f}  (training + test {t_train:.1f} s)")

    x = d.x_test.astype(np.float64)
    res = torch_run(net.to_graph(), {"x": np.repeat(x[None], args.steps, axis=0)})
    ir_pred = res.outputs["out"].mean(axis=0).argmax(axis=1)
    pred = net.predict(torch.tensor(d.x_test, device=args.device)).cpu().numpy()
    print(f"IR graph on the torch executor: test accuracy {np.mean(ir_pred == d.y_test):.4f}, "
          f"agrees with the trained model on {np.mean(ir_pred == pred):.2%} of the test samples")
    print(f"total run time: {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
