"""The main job of n3ml on the bundled example: the trained digits SNN, from PyTorch to every target.

    make demo            (or: .venv/bin/python examples/demo.py [--samples N])

Steps, each an ordinary `n3ml` command (printed before it runs):
  1. show the network exported with torch.export (examples/digits/digits_snn.pt2) and render it;
  2. convert it to the IR and simulate the test split on the torch executor: test accuracy;
  3. convert it for NEST and verify the emitted PyNEST program against the executor;
  4. quantize it for Loihi 2, convert it for Lava and verify the emitted Lava program bit for bit
     (needs the Lava venv, which `make demo` builds).
Everything is written under out/demo/.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits"
MODEL = DIGITS / "digits_snn.pt2"
LOIHI2 = "quantize{profile=loihi2,input_scale=16,readout=voltage}"


def n3ml(*args: str) -> None:
    cmd = [sys.executable, "-m", "n3ml", *args]
    print(f"\n$ n3ml {' '.join(shlex.quote(a) for a in args)}", flush=True)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT)
    if r.returncode != 0:
        sys.exit(f"demo: `n3ml {args[0]}` failed with exit status {r.returncode}")
    print(f"  ({time.perf_counter() - t0:.1f} s)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=20, help="test samples run on NEST and Lava (default 20)")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "demo")
    args = ap.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    with np.load(DIGITS / "test.npz") as z:
        x, labels = z["x"], z["labels"]
    steps = x.shape[0]
    np.savez(out / "test_x.npz", x=x)
    np.savez(out / "few_x.npz", x=x[:, : args.samples])
    # the quantized graph takes the pixels as integers 0..16 (input_scale=16)
    np.savez(out / "few_int.npz", x=np.round(16 * x[:, : args.samples]).astype(np.int64))

    n3ml("show", str(MODEL))
    n3ml("render", str(MODEL), "-o", str(out / "digits_snn.svg"), "--lr")

    n3ml("convert", str(MODEL), "--target", "ir", "-o", str(out / "ir"), "--force")
    n3ml("simulate", str(out / "ir" / "model.n3ml"), "--engine", "torch", "--steps", str(steps),
         "--input", str(out / "test_x.npz"), "-o", str(out / "ir_out.npz"))
    with np.load(out / "ir_out.npz") as r:
        readout = r["out"]
    acc = float(np.mean(readout.mean(0).argmax(-1) == labels))
    print(f"  test accuracy of the converted graph on the executor: {acc:.2%} ({len(labels)} digits)")

    n3ml("convert", str(MODEL), "--target", "nest", "-o", str(out / "nest"), "--force")
    n3ml("verify", str(MODEL), "--targets", "nest", "--steps", str(steps), "--input", str(out / "few_x.npz"))

    lava_python = ROOT / ".venv-lava" / "bin" / "python"
    if lava_python.exists():
        n3ml("convert", str(MODEL), "--target", "lava", "-p", LOIHI2, "-o", str(out / "lava"), "--force")
        n3ml("verify", str(MODEL), "-p", LOIHI2, "--targets", "lava", "--steps", str(steps),
             "--input", str(out / "few_int.npz"), "--record", "readout")
    else:
        print("\nLava venv not found: skipping Loihi 2 (build it with `make setup-lava`).")
    print(f"\ndemo done: outputs in {out}")


if __name__ == "__main__":
    main()
