"""DigitsSNN and the committed digits artifacts: the torch model, its .n3ml graph and test.npz agree."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from n3ml.ir import interp, text
from n3ml.nn.zoo import DigitsSNN

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"


@pytest.mark.parametrize("reset", ["to-value", "subtract"])
def test_to_graph_matches_model_in_float64(reset):
    torch.manual_seed(0)
    model = DigitsSNN(hidden=16, tau=4.0, scheme="euler", reset=reset).double()
    assert model.to_graph().nodes["lif1"].reset == reset
    with torch.no_grad():
        model.fc1.weight.mul_(3.0)
    x = np.random.default_rng(0).uniform(0, 1, (6, 5, 64))
    ref = interp.run(model.to_graph(), {"x": x}, record=["lif1"])
    with torch.no_grad():
        out = model(torch.from_numpy(x)).numpy()
        spikes = model.lif1(model.fc1(torch.from_numpy(x))).numpy()
    assert 0 < spikes.sum() < spikes.size
    np.testing.assert_array_equal(spikes, ref.states["lif1"])
    np.testing.assert_allclose(out, ref.outputs["out"], rtol=1e-12, atol=1e-12)


def test_committed_artifacts_agree_and_reach_95_percent():
    meta = json.loads((DIGITS / "digits_snn.json").read_text())
    model = DigitsSNN(**meta["model_args"])
    model.load_state_dict(torch.load(DIGITS / "digits_snn.pt", weights_only=True))
    data = np.load(DIGITS / "test.npz")
    x, labels = data["x"], data["labels"]
    assert x.shape == (meta["steps"], len(labels), 64)
    with torch.no_grad():
        pred = model.double().predict(torch.from_numpy(x).double()).numpy()
    graph = text.load(DIGITS / "digits_snn.n3ml")
    lif1 = graph.nodes["lif1"]  # Lava's and Loihi 2's reset, so the bundled model converts for every target
    assert lif1.reset == "to-value" and np.all(np.asarray(lif1.v_reset) == 0)
    ref = interp.run(graph, {"x": x.astype(np.float64)}).outputs["out"]
    assert np.array_equal(pred, ref.mean(0).argmax(-1))
    assert np.mean(pred == labels) >= 0.95
    for name, prim in model.to_graph().nodes.items():
        assert prim.same_as(graph.nodes[name]), name
