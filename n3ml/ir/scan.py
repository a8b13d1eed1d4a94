"""A fast path for the .n3ml parser: one regular expression scans, a small recursive descent builds.

The grammar is `n3ml.lark`, and lark remains the parser of record: this module accepts a subset
of that grammar (every file the printer writes, and the usual hand-written spellings) and builds
exactly the tree lark's LALR parser followed by the value transformer builds, token positions
included. On anything else -- any syntax error, any unusual spelling, any value error -- it gives
up (`Fallback`) and the caller parses the text again with lark, so every error message and every
corner of the grammar stays lark's. tests/ir/test_scan.py checks both agree on the examples, on
random graphs and on mutated text.

Why: lark's LALR parser costs about 75 us per node (a 200,000-node file took 15 s to parse);
this costs a few us per node.
"""

from __future__ import annotations

import re
from bisect import bisect_left

from lark import Tree

MAX_DEPTH = 32  # tuples nested deeper are left to lark (no field takes nested tuples)

# One token per match: blanks and comments before it are skipped (atomically: never given back),
# then the token. Anything no token starts with is taken as one character; punctuation is such a
# character too. Character classes are spelled out (no \d, \s, \w): lark's terminals are ASCII.
_FIND = re.compile(r"""(?>(?:[ \t\f\r\n]+|\#[^\n]*)*)(
    [+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[eE][+-]?[0-9]+)?
  | [A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*
  | "(?:[^"\\\n]|\\[^\n])*"
  | @[A-Za-z0-9_./\-]+
  | [\s\S])""", re.VERBOSE)
_END = "\n\x00"  # appended: the NUL is always the last token, so findall never searches past a gap
# kind of a token by its first character: "num", "word", "str", "key", or the punctuation itself.
# A lone "+", "-", "." or "@" (no number or key follows) gets a kind it fails to parse as: Fallback.
_KIND = {c: "num" for c in "0123456789+-."}
_KIND.update({c: "word" for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"})
_KIND.update({'"': "str", "@": "key"})
_KIND.update({c: c for c in "(){}=,<>[]"})
_UNITS = frozenset({"ms", "us", "s"})
_DTYPES = frozenset({"f64", "f32", "i64", "i32", "i16", "i8", "u8"})


class Fallback(Exception):
    """The fast path does not handle this text; parse it with lark."""


class _Lines:
    """Where the tokens of a text are: computed only when a position is asked for (an error, or
    the line of a node that fails to verify), so that a text that parses never pays for it."""

    def __init__(self, text: str):
        self.text = text
        self.starts: list[int] | None = None
        self.nl: list[int] | None = None

    def locate(self, j: int, delta: int = 0) -> tuple[int, int]:
        """(line, column) of character `delta` of token number `j`."""
        if self.starts is None:
            self.starts = [m.start(1) for m in _FIND.finditer(self.text + _END)]
            self.nl = [m.start() for m in re.finditer("\n", self.text)]
        pos = self.starts[j] + delta
        i = bisect_left(self.nl, pos)
        return i + 1, pos - (self.nl[i - 1] + 1 if i else 0) + 1


class Tok(str):
    """What the parser needs of a lark Token (its text, `type`, `line`, `column`), at a fraction of
    the cost: the line and column are computed only when asked for."""

    __slots__ = ("type", "_j", "_lines", "_delta")  # no per-token __dict__: a third of the cost

    def __new__(cls, typ: str, s: str, j: int, lines: _Lines, delta: int = 0):
        t = str.__new__(cls, s)
        t.type, t._j, t._lines, t._delta = typ, j, lines, delta
        return t

    @property
    def line(self) -> int:
        return self._lines.locate(self._j, self._delta)[0]

    @property
    def column(self) -> int:
        return self._lines.locate(self._j, self._delta)[1]


def tokens(text: str) -> tuple[list[str], list[str]]:
    """Kinds and texts of every token but blanks and comments; the last kind is "" (end of text)."""
    texts = _FIND.findall(text + _END)
    kinds = [_KIND.get(t[0], "bad") for t in texts]
    if texts[-1] != "\x00":
        raise Fallback
    kinds[-1] = ""
    return kinds, texts


class _Parser:
    def __init__(self, text: str, values):
        self.k, self.s = tokens(text)
        self.lines = _Lines(text)
        self.i = 0
        self.v = values  # the lark Transformer whose methods turn tokens into values

    def tok(self, typ: str, j: int) -> Tok:
        return Tok(typ, self.s[j], j, self.lines)

    def expect(self, kind: str) -> int:
        j = self.i
        if self.k[j] != kind:
            raise Fallback
        self.i = j + 1
        return j

    def name(self) -> Tok:
        j = self.expect("word")
        if "-" in self.s[j]:  # a WORD, not a NAME
            raise Fallback
        return self.tok("NAME", j)

    def int_(self, typ: str = "INT") -> Tok:
        j = self.expect("num")
        t = self.s[j]
        body = t[1:] if typ == "SIGNED_INT" and t[:1] in "+-" else t
        if not body.isdigit() or not body.isascii():
            raise Fallback
        return self.tok(typ, j)

    # ------------------------------------------------------------ grammar
    def start(self) -> Tree:
        k, s = self.k, self.s
        if k[0] != "word" or s[0] != "n3ml":
            raise Fallback
        self.i = 1
        header = Tree("header", [self.int_()])
        j = self.expect("word")
        if s[j] != "graph":
            raise Fallback
        children = [self.name()]
        self.expect("(")
        while k[self.i] != ")":
            key = self.name()
            self.expect("=")
            children.append(Tree("kw", [key, self.value(0)]))
            if k[self.i] != ")":
                self.expect(",")
        self.i += 1
        self.expect("{")
        node = self.node
        while k[self.i] == "word":
            children.append(node())
        self.expect("}")
        if k[self.i] != "":
            raise Fallback
        return Tree("start", [header, Tree("graph", children)])

    def node(self) -> Tree:
        # the hottest loop of a large file: written out flat (no helper calls per token)
        k, s, lines = self.k, self.s, self.lines
        i = self.i
        if k[i] != "word" or k[i + 1] != "=" or k[i + 2] != "word" or k[i + 3] != "(":
            raise Fallback
        if "-" in s[i] or "-" in s[i + 2]:  # WORDs, not NAMEs
            raise Fallback
        children = [Tok("NAME", s[i], i, lines), Tok("NAME", s[i + 2], i + 2, lines)]
        i += 4
        while k[i] != ")":
            if k[i] != "word" or "-" in s[i]:
                raise Fallback
            key = Tok("NAME", s[i], i, lines)
            if k[i + 1] == "=":
                self.i = i + 2
                children.append(Tree("kw", [key, self.value(0)]))
                i = self.i
            else:
                children.append(Tree("ref", [key]))
                i += 1
            if k[i] != ")":
                if k[i] != ",":
                    raise Fallback
                i += 1
        self.i = i + 1
        return Tree("node", children)

    def value(self, depth: int):
        j = self.i
        kind, s = self.k[j], self.s[j]
        self.i = j + 1
        v = self.v
        if kind == "num":
            unit = None
            if self.k[j + 1] == "word":
                if self.s[j + 1] not in _UNITS:  # lark would lex a unit prefix of it, or fail: its call
                    raise Fallback
                unit = self.tok("UNIT", j + 1)
                self.i += 1
            return v.number([self.tok("SIGNED_NUMBER", j), unit])
        if kind == "word":
            if s == "true":
                return True
            if s == "false":
                return False
            if s == "none":
                return None
            if s == "tensor":
                return self.tensor()
            if s in ("fixed", "ufixed"):
                kind_tok = self.tok("FIXED", j)
                self.expect("<")
                bits = self.int_()
                self.expect(",")
                frac = self.int_("SIGNED_INT")
                self.expect(">")
                return v.fixed([kind_tok, bits, frac])
            return v.word([self.tok("WORD", j)])
        if kind == "str":
            return v.string([self.tok("STRING", j)])
        if kind == "key":
            if len(s) < 2:  # a lone "@": lark's (its KEY may follow after blanks)
                raise Fallback
            return v.sidecar([Tok("KEY", s[1:], j, self.lines, 1)])
        if kind == "(":
            if depth >= MAX_DEPTH:
                raise Fallback
            if self.k[self.i] == ")":
                self.i += 1
                return ()
            items = [self.value(depth + 1)]
            if self.k[self.i] != ",":  # "(x)" is not a tuple in the grammar
                raise Fallback
            while self.k[self.i] == ",":
                self.i += 1
                if self.k[self.i] == ")":
                    break
                items.append(self.value(depth + 1))
            self.expect(")")
            return tuple(items)
        raise Fallback

    def tensor(self):
        k, s = self.k, self.s
        self.expect("<")
        j = self.expect("word")
        if s[j] not in _DTYPES:
            raise Fallback
        items = [self.tok("DTYPE", j)]
        self.expect(">")
        self.expect("(")
        while k[self.i] != ")":
            items.append(self.int_())
            if k[self.i] != ")":
                self.expect(",")
        self.i += 1
        self.expect("[")
        while k[self.i] != "]":
            items.append(self.tok("SIGNED_NUMBER", self.expect("num")))
            if k[self.i] != "]":
                self.expect(",")
        self.i += 1
        return self.v.tensor(items)


def parse_fast(text: str, values) -> Tree:
    """The transformed tree of `text`, as lark + `values` would build it; Fallback if not handled."""
    try:
        return _Parser(text, values).start()
    except Fallback:
        raise
    except Exception:  # a value error, or anything unforeseen: lark's path reports it (identically)
        raise Fallback from None
