"""Run by tests/train/test_ddp.py under torchrun: train a tiny SNN data-parallel and save each replica."""

import json
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from n3ml.train import Trainer, close_distributed, init_distributed
from tests.train.tiny import tiny_data, tiny_model


def main(out: Path) -> None:
    rank, world, device = init_distributed()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = tiny_model()
    if rank == 1:  # replicas start apart: DDP must broadcast rank 0's weights
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    trainer = Trainer(model, opt, device=device, progress=False, seed=1, checkpoint=out / "ckpt.pt")
    history = trainer.fit(tiny_data(64, seed=2), epochs=3, batch_size=8)
    torch.save(model.state_dict(), out / f"rank{rank}.pt")
    (out / f"rank{rank}.json").write_text(json.dumps({"world": world, "history": [asdict(h) for h in history]}))
    close_distributed()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
