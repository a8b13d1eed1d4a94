"""Data-parallel training: two CPU processes (gloo) launched with torchrun end with identical weights."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def test_two_gloo_replicas_end_identical(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("CUDA_VISIBLE_DEVICES", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "tests/train/ddp_worker.py"), str(tmp_path)]
    p = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    w0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k
    torch.manual_seed(0)
    from tests.train.tiny import tiny_model

    init = tiny_model().state_dict()
    assert any(not torch.equal(init[k], w0[k]) for k in w0), "training changed nothing"
    h0, h1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert h0["world"] == 2
    assert h0["history"][-1]["loss"] == h1["history"][-1]["loss"]  # metrics reduced over both processes
    assert h0["history"][-1]["loss"] < h0["history"][0]["loss"]
    assert json.loads((tmp_path / "ckpt.json").read_text())["world_size"] == 2
