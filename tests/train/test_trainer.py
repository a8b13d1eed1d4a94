import json

import pytest
import torch

from n3ml.errors import N3mlError
from n3ml.train import Trainer, load_checkpoint
from tests.train.tiny import tiny_data, tiny_model


def make(tmp_path=None, seed=0):
    torch.manual_seed(seed)
    model = tiny_model()
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    ckpt = tmp_path / "run.pt" if tmp_path is not None else None
    return Trainer(model, opt, scheduler=sched, checkpoint=ckpt, progress=False, seed=3,
                   metadata={"model_args": {}}), model


def test_loss_falls_and_accuracy_rises():
    trainer, _ = make()
    data = tiny_data(96, seed=0)
    before_loss, before_acc = trainer.evaluate(data)
    hist = trainer.fit(data, epochs=6, batch_size=16)
    assert [h.epoch for h in hist] == list(range(1, 7))
    assert hist[-1].loss < 0.5 * hist[0].loss
    after_loss, after_acc = trainer.evaluate(tiny_data(64, seed=1))  # unseen samples
    assert after_loss < 0.5 * before_loss
    assert after_acc >= 0.9 and before_acc < 0.9


def test_resume_continues_exactly(tmp_path):
    data = tiny_data(48, seed=0)
    straight, m1 = make()
    straight.fit(data, epochs=4, batch_size=8)

    first, _ = make(tmp_path)
    first.fit(data, epochs=2, batch_size=8)
    meta = json.loads((tmp_path / "run.json").read_text())
    assert meta["epoch"] == 2 and len(meta["history"]) == 2 and meta["metadata"] == {"model_args": {}}
    resumed, m2 = make(tmp_path, seed=123)  # different initial weights: all must come from the checkpoint
    hist = resumed.fit(data, epochs=4, batch_size=8, resume=True)
    assert [h.epoch for h in hist] == [1, 2, 3, 4]
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k
    assert resumed.scheduler.last_epoch == 4


def test_checkpoint_is_weights_only(tmp_path):
    trainer, model = make(tmp_path)
    trainer.fit(tiny_data(16, seed=0), epochs=1, batch_size=8)
    tensors, meta = load_checkpoint(tmp_path / "run.pt")
    assert set(tensors) >= {"model", "optimizer"} and meta["model_class"].endswith(":TinySNN")
    torch.load(tmp_path / "run.pt", weights_only=True)  # plain containers of tensors

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"model": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(N3mlError, match="not a readable weights-only checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(N3mlError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
