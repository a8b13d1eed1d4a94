"""Data-parallel training: two CPU processes (gloo) launched with torchrun end with identical weights."""

import json
import os
import shutil
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


def _close(a: dict, b: dict, what: str) -> None:
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-9, atol=1e-12), f"{what}: {k} differs by {(a[k] - b[k]).abs().max()}"


def test_stbp_digits_two_processes_match_one_and_resume_across_counts(tmp_path):
    """Global batch 30 over 2 gloo processes = one process with batch 30 (float64, to rounding); a checkpoint
    written by 2 processes resumes on 1 and one written by 1 resumes on 2, ending at the same weights."""
    from tests.train.stbp_digits import BATCH, EPOCHS, digits_data, make_trainer

    data = digits_data()
    one, net = make_trainer(tmp_path / "one.pt")
    init = {k: v.clone() for k, v in net.state_dict().items()}
    one.fit(data, 2, batch_size=BATCH)  # the one-process checkpoint the worker resumes with two

    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("CUDA_VISIBLE_DEVICES", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "tests/train/ddp_stbp_worker.py"), str(tmp_path)]
    p = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]

    one.checkpoint = None
    hist = one.fit(data, EPOCHS, batch_size=BATCH)  # the uninterrupted one-process reference
    ref = net.state_dict()
    assert any(not torch.equal(init[k], ref[k]) for k in ref)
    assert hist[-1].loss < hist[0].loss and hist[-1].accuracy > 0.3  # it learns (chance: 0.1)

    _close(ref, torch.load(tmp_path / "straight.pt", weights_only=True), "2 processes vs 1")
    _close(ref, torch.load(tmp_path / "resumed.pt", weights_only=True)["model"], "saved by 1, resumed by 2")
    assert json.loads((tmp_path / "resumed.json").read_text())["world_size"] == 2
    assert json.loads((tmp_path / "two.json").read_text())["world_size"] == 2
    shutil.copy(tmp_path / "two.pt", tmp_path / "cont.pt")
    shutil.copy(tmp_path / "two.json", tmp_path / "cont.json")
    cont, net2 = make_trainer(tmp_path / "cont.pt")
    cont.fit(data, EPOCHS, batch_size=BATCH, resume=True)
    _close(ref, net2.state_dict(), "saved by 2, resumed by 1")
    for a, b in zip(hist, cont.history):  # the metrics too are those of the global batches
        assert abs(a.loss - b.loss) < 1e-9 and a.accuracy == b.accuracy
