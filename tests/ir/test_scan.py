"""The parser's fast path (n3ml/ir/scan.py) builds exactly lark's tree, or hands the text to lark."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lark import Token, Tree
from lark.exceptions import LarkError

from n3ml.ir.printer import dumps
from n3ml.ir.scan import Fallback, parse_fast
from n3ml.ir.text import _PARSER, _Located, _Values
from tests.strategies import conv_graphs, mlp_graphs

ROOT = Path(__file__).parents[2]
EXAMPLES = sorted((ROOT / "examples").rglob("*.n3ml"))


def norm(x):
    """A comparable form of a transformed tree: token text, type and position; arrays by bytes."""
    if isinstance(x, Tree):
        return ("T", x.data, tuple(norm(c) for c in x.children if c is not None))
    if isinstance(x, Token) or hasattr(x, "type") and isinstance(x, str):
        return ("tok", x.type, str(x), x.line, x.column)
    if isinstance(x, np.ndarray):
        return ("arr", x.dtype.str, x.shape, x.tobytes())
    if isinstance(x, tuple):
        return ("tuple",) + tuple(norm(c) for c in x)
    if isinstance(x, float):
        return ("float", repr(x))
    if hasattr(x, "__dataclass_fields__"):  # _Quantity, _Word, _Ref, FixedPoint
        return (type(x).__name__,) + tuple(norm(getattr(x, f)) for f in x.__dataclass_fields__)
    return (type(x).__name__, x)


def lark_tree(text):
    try:
        return _Values().transform(_PARSER.parse(text))
    except (LarkError, _Located, RecursionError):
        return None


def agree(text):
    """parse_fast either falls back or builds lark's tree; it never accepts what lark refuses."""
    try:
        fast = parse_fast(text, _Values())
    except Fallback:
        return "fallback"
    slow = lark_tree(text)
    assert slow is not None, f"fast path accepted text lark refuses:\n{text[:500]}"
    assert norm(fast) == norm(slow)
    return "fast"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_take_the_fast_path_and_agree(path):
    assert agree(path.read_text()) == "fast"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(mlp_graphs(), conv_graphs()))
def test_printed_graphs_take_the_fast_path_and_agree(g):
    assert agree(dumps(g)[0]) == "fast"


HAND = [
    'n3ml 1\ngraph g(dt=500us, scheme=euler,) {\n  x = Input(shape=(4,), kind=analog,)\n'
    '  n = LIF(x, tau=0.02s, reset=to-value, v_reset=-.5, theta=1.e0)  # comment\n  out = Output(n)\n}\n',
    'n3ml 1 graph g() { x=Input(shape=(2,)) o=Output(x) }',
    'n3ml 1\ngraph g(weights="w.npz") {\n  x = Input(shape=(2, 3))\n  d = Dense(x, weight=@d.w, bias=none)\n}\n',
    'n3ml 1\ngraph g() {\n  w = Dense(x, weight=tensor<i8>(2, 2)[1, -2, +3, 4,], weight_format=fixed<8, -2>)\n}\n',
    'n3ml 1\ngraph g() {\n  w = Scale(x, factor=tensor<f32>()[1.5])\n  s = Foo(a, b, c=(), d=((1,), (2, 3),), e="a\\"b\\\\", f=ufixed<4, +1>)\n}\n',
    'n3ml 1\ngraph graph() {\n  true = Input(shape=(1,))\n  tensor = IF(true, reset=graph)\n  fixed = Output(tensor)\n}\n',
    'n3ml 1\ngraph g() {\n  n = IF(x, reset=fixed-point, a=fixedx, b=n3ml, c=true-ish)\n}\n',
]

BROKEN = [
    'n3ml 1\ngraph g() {\n  n = IF(x, theta=(1))\n}\n',
    'n3ml 1\ngraph g() {\n  n = IF(x, theta=1msx)\n}\n',
    'n3ml 1\ngraph g() {\n  n = IF(x, theta=1 ms)\n}\n',
    'n3ml 1\ngraph g() {\n  n = IF(x, theta=@ a.b)\n}\n',
    'n3ml 1\ngraph g() {\n  a-b = IF(x)\n}\n',
    'n3ml 1\ngraph g() {\n  n = IF(x,)\n}\n',
    'n3ml 1\ngraph g() {\n  n = IF(,)\n}\n',
    'n3ml 1\ngraph g() {\n  n = IF(x, s="a\tb")\n}\n',
    'n3ml 1\ngraph g() {\n  n = IF(x, t=tensor<f64>(+2)[1, 2])\n}\n',
    'n3ml 1\ngraph g() {\n  n = IF(x, t=1e999)\n}\n',
    'n3ml 1\ngraph g() {\n  n = IF(x)\n}\n}',
    'n3ml 1\ngraph g() {\n  n = IF(x) é\n}\n',
    'n3ml +1\ngraph g() {}\n',
    'n3ml 1\ngraph g() {\n  n = IF(x, s="\\u00e9\\n")\n}\n',
]


@pytest.mark.parametrize("text", HAND + BROKEN)
def test_hand_written_and_broken_text_agree(text):
    agree(text)


def test_hand_written_spellings_take_the_fast_path():
    assert [agree(t) for t in HAND] == ["fast"] * len(HAND)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_text_agrees(data):
    base = data.draw(st.sampled_from([p.read_text() for p in EXAMPLES[:6]] + HAND))
    chars = list(base)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, max(len(chars) - 1, 0)))
        op = data.draw(st.sampled_from(["del", "dup", "put"]))
        if op == "del" and chars:
            del chars[i]
        elif op == "dup" and chars:
            chars.insert(i, chars[i])
        else:
            chars.insert(i, data.draw(st.sampled_from(list('(),=<>[]{}@"#\n\t -+.e0129azAZ_ms'))))
    agree("".join(chars))
