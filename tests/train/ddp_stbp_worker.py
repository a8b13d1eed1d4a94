"""Run by tests/train/test_ddp.py under torchrun (2 processes): the digits STBP network trained data-parallel.

    ddp_stbp_worker.py OUT      writes OUT/straight.pt (EPOCHS epochs), OUT/two.pt (the checkpoint after 2
                                epochs, for a one-process resume) and OUT/resumed.pt (OUT/one.pt, a one-process
                                checkpoint after 2 epochs, resumed to EPOCHS with two processes)
"""

import shutil
import sys
from pathlib import Path

import torch

from n3ml.train import close_distributed, init_distributed
from tests.train.stbp_digits import BATCH, EPOCHS, digits_data, make_trainer


def main(out: Path) -> None:
    rank, world, device = init_distributed()
    torch.set_num_threads(1)
    data = digits_data()
    trainer, net = make_trainer(None, device)
    trainer.fit(data, EPOCHS, batch_size=BATCH)
    if rank == 0:
        torch.save(net.state_dict(), out / "straight.pt")

    trainer, _ = make_trainer(out / "two.pt", device)
    trainer.fit(data, 2, batch_size=BATCH)

    if rank == 0:
        shutil.copy(out / "one.pt", out / "resumed.pt")
        shutil.copy(out / "one.json", out / "resumed.json")
    torch.distributed.barrier()
    trainer, net = make_trainer(out / "resumed.pt", device)
    trainer.fit(data, EPOCHS, batch_size=BATCH, resume=True)
    assert trainer.history[0].epoch == 1 and len(trainer.history) == EPOCHS
    close_distributed()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
