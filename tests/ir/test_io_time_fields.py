"""Input.hold and Output.reduce (how a converted model used time): verified, and print -> parse -> print."""

from __future__ import annotations

import numpy as np
import pytest

from n3ml.ir import Graph, VerifyError
from n3ml.ir import prims as P
from n3ml.ir.printer import dumps
from n3ml.ir.text import parse


def _graph(hold=4, reduce="mean"):
    g = Graph("m", 1.0, "euler")
    g.add("x", P.Input(shape=(3,), kind="analog", hold=hold))
    g.add("fc", P.Dense(weight=np.array([[1.0, 0.0, 2.0]])), "x")
    g.add("out", P.Output(reduce=reduce), "fc")
    return g


def test_round_trip_keeps_hold_and_reduce():
    text, _ = dumps(_graph())
    assert "hold=4" in text and "reduce=mean" in text
    parsed = parse(text)
    g2 = parsed[0] if isinstance(parsed, tuple) else parsed
    assert g2.nodes["x"].hold == 4 and g2.nodes["out"].reduce == "mean"
    assert dumps(g2)[0] == text


def test_defaults_are_not_printed():
    text, _ = dumps(_graph(hold=0, reduce="none"))
    assert "hold" not in text and "reduce" not in text


@pytest.mark.parametrize("prim, match", [(P.Input(shape=(3,), hold=-1), "hold"),
                                         (P.Input(shape=(3,), hold=True), "hold"),
                                         (P.Output(reduce="max"), "reduce")])
def test_bad_values_are_refused(prim, match):
    with pytest.raises(VerifyError, match=match):
        prim.verify("n")
