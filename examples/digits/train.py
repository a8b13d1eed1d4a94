"""Train a spiking network (n3ml.nn) on scikit-learn's 8x8 digits and save it for `n3ml convert`.

    .venv/bin/python examples/digits/train.py                      # one process, ~20 s with start-up
    .venv/bin/torchrun --nproc_per_node 2 examples/digits/train.py # the same, data-parallel (DDP, gloo)

The network is `n3ml.nn.zoo.DigitsSNN`: Linear(64 -> 128) + LIF + Linear(128 -> 10) + LI readout,
the hidden LIF resetting to 0 after a spike (the reset every target has, Lava and Loihi 2 included;
--reset subtract trains the reset-by-subtraction variant). T = 8 steps of direct (analog) input:
the pixel values / 16 presented at every step. The split is stratified and fixed by the seed; the
test samples are never seen in training. Default run: 97.78% test accuracy in ~12 s (one process).

Writes into --out (default: this folder):
    digits_snn.pt    state_dict (torch.load(..., weights_only=True))
    digits_snn.json  the model class and its constructor arguments, accuracy, timing
    digits_snn.n3ml  the graph (with digits_snn.npz holding the weights), built from each module's to_ir()
    digits_snn.pt2   torch.export program, neurons as torch.ops.n3ml operators (`n3ml convert` reads it)
    test.npz         the test split in the common layout: x (T, B, 64) and labels (B,)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import TensorDataset

from n3ml.ir import interp, text
from n3ml.nn import repeat_time
from n3ml.nn.zoo import DigitsSNN
from n3ml.train import Trainer, close_distributed, init_distributed

HERE = Path(__file__).resolve().parent


def data(seed: int, test_size: float):
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)  # pixel values 0..16 -> [0, 1]
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=test_size, stratify=y, random_state=seed)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--steps", type=int, default=8, help="time steps T per sample")
    ap.add_argument("--reset", choices=("to-value", "subtract"), default="to-value",
                    help="hidden LIF reset: to 0 (default; Lava/Loihi 2) or by subtraction of theta")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=32, help="global batch (all processes)")
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test-size", type=float, default=0.2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process (small matmuls: 1 is fastest)")
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--checkpoint", type=Path, default=None, help="checkpoint file, rewritten every epoch")
    ap.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    rank, world, device = init_distributed()
    torch.set_num_threads(max(1, args.threads // world))
    torch.manual_seed(args.seed)  # identical initial weights in every process
    x_tr, x_te, y_tr, y_te = data(args.seed, args.test_size)
    train_set = TensorDataset(torch.from_numpy(x_tr), torch.from_numpy(y_tr))
    test_set = TensorDataset(torch.from_numpy(x_te), torch.from_numpy(y_te))

    model_args = {"n_in": 64, "hidden": args.hidden, "n_out": 10, "reset": args.reset}
    model = DigitsSNN(**model_args)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    T = args.steps

    def show(m):
        print(f"epoch {m.epoch:3d}  loss {m.loss:.4f}  train acc {m.accuracy:.4f}  "
              f"test acc {m.val_accuracy:.4f}  ({m.seconds:.1f} s)", flush=True)

    trainer = Trainer(model, opt, scheduler=sched, inputs=lambda x: repeat_time(x, T), device=device,
                      checkpoint=args.checkpoint, seed=args.seed, progress=not args.no_progress,
                      metadata={"model": "n3ml.nn.zoo:DigitsSNN", "model_args": model_args, "steps": T},
                      on_epoch=show)
    trainer.fit(train_set, args.epochs, batch_size=args.batch_size, val_data=test_set, resume=args.resume)
    t_train = time.perf_counter() - t_start
    _, acc = trainer.evaluate(test_set)
    close_distributed()
    if rank != 0:
        return 0
    print(f"test accuracy {acc:.4f} ({len(y_te)} samples), training time {t_train:.1f} s "
          f"({world} process{'es' if world > 1 else ''}, {torch.get_num_threads()} thread(s) each)")

    # ------------------------------------------------------------ artifacts
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    torch.save(model.state_dict(), out / "digits_snn.pt")
    x_test = np.ascontiguousarray(np.broadcast_to(x_te, (T, *x_te.shape)))  # (T, B, 64)
    np.savez_compressed(out / "test.npz", x=x_test, labels=y_te)

    graph = model.to_graph()
    text.save(graph, out / "digits_snn.n3ml")
    ref = interp.run(graph, {"x": x_test.astype(np.float64)}).outputs["out"]
    acc_ir = float(np.mean(ref.mean(0).argmax(-1) == y_te))
    with torch.no_grad():
        pred64 = model.double().predict(torch.from_numpy(x_test).double()).numpy()
    agree = float(np.mean(pred64 == ref.mean(0).argmax(-1)))
    model.float()
    print(f"reference interpreter on digits_snn.n3ml: accuracy {acc_ir:.4f}, "
          f"agreement with the torch model (float64) {agree:.4f}")

    exported = False
    try:
        example = torch.from_numpy(x_test[:, :4].copy())
        dynamic = {0: torch.export.Dim.AUTO, 1: torch.export.Dim.AUTO}  # any T and batch size
        prog = torch.export.export(model, (example,), dynamic_shapes=(dynamic,))
        torch.export.save(prog, out / "digits_snn.pt2")
        exported = True
    except Exception as e:  # export is a convenience; the .pt and .n3ml forms are the contract
        print(f"torch.export failed, no .pt2 written: {type(e).__name__}: {e}", file=sys.stderr)
    meta = {"model": "n3ml.nn.zoo:DigitsSNN", "model_args": model_args, "steps": T, "input": "x",
            "input_shape": [T, "B", 64], "encoding": "direct: pixel/16 as an analog current at every step",
            "readout": "argmax over the time-mean of `out` (LI voltages)", "seed": args.seed,
            "test_accuracy": acc, "reference_accuracy": acc_ir, "train_seconds": round(t_train, 2),
            "processes": world, "torch_export": exported}
    (out / "digits_snn.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"saved digits_snn.pt, digits_snn.json, digits_snn.n3ml{', digits_snn.pt2' if exported else ''} "
          f"and test.npz in {out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.exit(main())
