"""Mutations of model and data files: bytes, zip archives (.npz, .pt, .pt2), .npy headers and .n3ml text.

Every mutator is a function (rng, data) -> bytes, drawn from a table; all randomness comes from the
`random.Random` passed in, so a (seed, case number) pair reproduces a case exactly.
"""

from __future__ import annotations

import ast
import io
import random
import re
import struct
import warnings
import zipfile

# ------------------------------------------------------------------------ bytes

_INTERESTING = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\xff\xff\xff\x7f",
                b"\x00\x00\x00\x80", b"\xff" * 8, b"\x00" * 8, struct.pack("<d", float("nan")),
                struct.pack("<d", float("inf")), struct.pack("<q", 2 ** 62)]


def flip_bits(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 4, 8))):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data))]


def delete_range(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data))
    return data[:i] + data[i + rng.randint(1, max(1, min(64, len(data) - i))):]


def insert_bytes(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data) + 1)
    junk = rng.choice([bytes(rng.randrange(256) for _ in range(rng.randint(1, 16))), rng.choice(_INTERESTING)])
    return data[:i] + junk + data[i:]


def duplicate_range(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data))
    j = min(len(data), i + rng.randint(1, 256))
    k = rng.randrange(len(data) + 1)
    return data[:k] + data[i:j] + data[k:]


def overwrite_interesting(rng: random.Random, data: bytes) -> bytes:
    v = rng.choice(_INTERESTING)
    i = rng.randrange(max(1, len(data) - len(v) + 1))
    return data[:i] + v + data[i + len(v):]


BYTE_MUTATORS = [flip_bits, truncate, delete_range, insert_bytes, duplicate_range, overwrite_interesting]


def mutate_bytes(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    if not data:
        return "random", bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    m = rng.choice(BYTE_MUTATORS)
    return m.__name__, m(rng, data)


# ------------------------------------------------------------------------- .npy

_NPY_DESCRS = ["<U8", ">f8", "|O", "<M8[D]", "<c16", "|V8", "|b1", "<i8", ">i4", "<f2", "|S3", "<m8[s]",
               "[('a', '<f8')]", "<f16"]
_NPY_SHAPES = ["(1000000000000,)", "(4611686018427387904, 2)", "()", "(0,)", "(-1,)", "(3, 0, 5)",
               "(2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2)",
               "(1,)", "(100000, 100000)", "(1.5,)", "'x'"]


def npy_header_lie(rng: random.Random, data: bytes) -> bytes:
    """Rewrite a .npy header's shape, dtype or order while keeping the data: the header lies."""
    if not data.startswith(b"\x93NUMPY") or len(data) < 12:
        return flip_bits(rng, data) if data else data
    major = data[6]
    hlen_size = 2 if major == 1 else 4
    hlen = int.from_bytes(data[8:8 + hlen_size], "little")
    start = 8 + hlen_size
    header = data[start:start + hlen].decode("latin1")
    try:
        d = ast.literal_eval(header.strip())
    except (ValueError, SyntaxError):
        return flip_bits(rng, data)
    field = rng.choice(["shape", "descr", "fortran_order", "extra", "missing"])
    text = "{" + ", ".join(f"'{k}': {v!r}" for k, v in d.items() if not (field == "missing" and k == "shape")) + "}"
    if field == "shape":
        text = text.replace(f"'shape': {d['shape']!r}", f"'shape': {rng.choice(_NPY_SHAPES)}")
    elif field == "descr":
        descr = rng.choice(_NPY_DESCRS)
        text = text.replace(f"'descr': {d['descr']!r}", f"'descr': {descr if descr.startswith('[') else repr(descr)}")
    elif field == "fortran_order":
        text = text.replace("'fortran_order': False", "'fortran_order': True")
    elif field == "extra":
        text = text[:-1] + ", 'evil': 1}"
    raw = text.encode("latin1")
    pad = (-(start + len(raw) + 1)) % 64
    raw = raw + b" " * pad + b"\n"
    return data[:6] + bytes([major, data[7]]) + len(raw).to_bytes(hlen_size, "little") + raw + data[start + hlen:]


# ------------------------------------------------------------------------- zips


def _members(data: bytes) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [(i, z.read(i)) for i in z.infolist()]


def _rezip(members: list[tuple[zipfile.ZipInfo, bytes]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate member names are one of the mutations
        for info, payload in members:
            z.writestr(info, payload)
    return out.getvalue()


def replace_member(rng: random.Random, data: bytes) -> bytes:
    """One member of the archive replaced: mutated, emptied, random, another member's bytes, or a lying .npy."""
    ms = _members(data)
    k = rng.randrange(len(ms))
    info, payload = ms[k]
    how = rng.choice(["mutate", "mutate", "empty", "random", "other", "npy"])
    if how == "mutate":
        payload = mutate_bytes(rng, payload)[1]
    elif how == "empty":
        payload = b""
    elif how == "random":
        payload = bytes(rng.randrange(256) for _ in range(rng.randint(1, 512)))
    elif how == "other":
        payload = ms[rng.randrange(len(ms))][1]
    else:
        npys = [p for _, p in ms if p.startswith(b"\x93NUMPY")]
        payload = npy_header_lie(rng, rng.choice(npys)) if npys else flip_bits(rng, payload or b"\x00")
    ms[k] = (info, payload)
    return _rezip(ms)


def drop_or_add_member(rng: random.Random, data: bytes) -> bytes:
    ms = _members(data)
    if rng.random() < 0.5 and len(ms) > 1:
        del ms[rng.randrange(len(ms))]
    else:
        info, payload = ms[rng.randrange(len(ms))]
        name = rng.choice([info.filename, info.filename + "x", "../evil", "/abs/path.npy", "extra.npy"])
        ms.append((zipfile.ZipInfo(name), payload))
    return _rezip(ms)


def zip_header_lie(rng: random.Random, data: bytes) -> bytes:
    """Corrupt a size, CRC, offset or name length in a local or central directory header; or give a member
    name an invalid UTF-8 byte while the header says UTF-8."""
    b = bytearray(data)
    sigs = [m.start() for m in re.finditer(rb"PK\x01\x02|PK\x03\x04", data)]
    if not sigs:
        return flip_bits(rng, data)
    at = rng.choice(sigs)
    central = b[at + 2:at + 4] == b"\x01\x02"
    # (offset, size) of: crc, compressed size, uncompressed size, name length, local header offset
    fields = [(16, 4), (20, 4), (24, 4), (28, 2), (42, 4)] if central else [(14, 4), (18, 4), (22, 4), (26, 2)]
    if rng.random() < 0.2:
        name_at = at + (46 if central else 30)
        if name_at < len(b):
            b[name_at] = 0xFF
            flag_at = at + (8 if central else 6)
            b[flag_at + 1] |= 0x08  # general purpose flag bit 11: the name is UTF-8
        return bytes(b)
    off, size = rng.choice(fields)
    if at + off + size > len(b):
        return flip_bits(rng, data)
    value = rng.choice([0, 1, 2 ** (8 * size) - 1, 2 ** (8 * size - 1), rng.randrange(2 ** (8 * size))])
    b[at + off:at + off + size] = value.to_bytes(size, "little")
    return bytes(b)


ZIP_MUTATORS = [replace_member, replace_member, drop_or_add_member, zip_header_lie]


def mutate_file(rng: random.Random, data: bytes, is_zip: bool, npz: bool = False) -> tuple[str, bytes]:
    """One mutation of a file's bytes: structure-aware for zip archives more than half of the time, and for
    .npz files often a valid archive whose arrays lie (npz_array_swap)."""
    if npz and rng.random() < 0.4:
        return "npz_array_swap", npz_array_swap(rng, data)
    if is_zip and rng.random() < 0.6:
        m = rng.choice(ZIP_MUTATORS)
        try:
            return m.__name__, m(rng, data)
        except (zipfile.BadZipFile, ValueError, IndexError):
            pass
    return mutate_bytes(rng, data)


# ------------------------------------------------------------------------- text

TOKEN_RE = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*|[A-Za-z_][A-Za-z0-9_.\-]*|[-+]?\d[\d.eE+\-]*|\s+|.', re.S)

# tokens that once broke (or could break) a parser, a verifier or a printer
HOSTILE_TOKENS = [
    "0", "-1", "1e400", "-1e308", "1e20", "nan", "inf", "-0.0", "1e-320", "9" * 40, "9" * 5000, "18446744073709551616",
    "-9223372036854775809", "tensor<i8>(1)[300]", "tensor<u8>(1)[-1]", "tensor<f64>(2)[1.0]", "tensor<f64>()[]",
    "tensor<f64>(0)[]", "tensor<i64>(1)[99999999999999999999]", "\t", '"\t"', '"a\\u0000"', '"\\ud800"', "@w",
    "@../x", "@fc1.weight", "(1,)", "()", "((((((((1))))))))", "(" * 1000 + "1" + ",)" * 1000, "[", "]", "{", "}",
    "(", ")", ",", "=", "ms", "us", "s", "true", "none", "fixed<8, 0>", "fixed<64, 70>", "ufixed<1, -5>",
    "to-value", "subtract", "zero", "exact", "euler", "spike", "analog", "LIF", "Input", "Output", "Delay", "Dense",
    "Add", "FixedCubaLIF", "IF", "x", "out", "steps=1e20", "theta=-1e308", "refractory=" + "7" * 5000,
    "shape=(10000000000,)", "shape=(0,)", "scheme=(1, 2)", "reset=[1]", "kind=tensor<f64>(1)[1.0]", "n3ml 2",
    "weights=\"/dev/zero\"", "weights=\"missing.npz\"", "\u00e9", "\x00", "\r", "\\",
]


def tokens(text: str) -> list[str]:
    return TOKEN_RE.findall(text)

# values of the right syntactic class, so that a mutant parses and reaches the verifier, the printer and engines
NUMBERS = ["0", "-1", "1", "2", "0.5", "-0.0", "1e400", "-1e400", "-1e308", "1e308", "1e20", "1e-320", "9" * 5000,
           "18446744073709551616", "-9223372036854775809", "9223372036854775807", "1e9", "100000", "0.1ms", "1e400ms",
           "-5ms", "0us", "3s"]
STRINGS = ['"\t"', '"a\\u0000"', '"/dev/zero"', '"missing.npz"', '""', '"../x.npz"', '"a b"', '"' + "a" * 300 + '"',
           '"spiking_mlp.npz"', '"\u00e9"', '"."']
VALUES = NUMBERS + STRINGS + [
    "subtract", "to-value", "none", "zero", "exact", "euler", "spike", "analog", "true", "false", "nan", "inf",
    "tensor<f64>(1)[1.0]", "tensor<i8>(1)[300]", "tensor<u8>(1)[-1]", "tensor<i64>(1)[99999999999999999999]",
    "tensor<f64>(2, 2)[1, 2, 3]", "tensor<f64>(0)[]", "tensor<f32>(1)[1e400]", "(1, 2)", "()", "(0,)", "(1,)",
    "(10000000000,)", "(3, 3)", "((((1,),),),)", "fixed<8, 0>", "fixed<64, 70>", "ufixed<1, -5>", "fixed<0, 0>",
    "@fc1.weight", "@nothing", "@../x", "x", "out",
]


def value_positions(toks: list[str]) -> list[int]:
    """Indices of the tokens that start a value (`key=VALUE`)."""
    out = []
    for i, t in enumerate(toks):
        if t == "=" and i + 1 < len(toks):
            j = i + 1
            while j < len(toks) and toks[j].isspace():
                j += 1
            if j < len(toks):
                out.append(j)
    return out


# ------------------------------------------------------------------------- .npz arrays

_DTYPES = ["<f2", "<f4", ">f8", ">f4", "<i1", "<u1", ">i8", "<i8", "|b1", "<c16", "<M8[D]", "<m8[s]", "<U3", "|S2",
           "<f16"]


def npz_array_swap(rng: random.Random, data: bytes) -> bytes:
    """A valid .npz whose contents lie: one array cast to another dtype, filled with NaN/inf/huge values,
    reshaped, emptied, or dropped, or a stray array added. These reach the array checks, not the zip reader."""
    import numpy as np

    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    if not arrays:
        return data
    k = rng.choice(sorted(arrays))
    a = arrays[k]
    how = rng.choice(["dtype", "dtype", "values", "values", "shape", "empty", "drop", "add", "scalar"])
    try:
        if how == "dtype":
            arrays[k] = a.astype(rng.choice(_DTYPES))
        elif how == "values" and a.size:
            b = a.astype(np.float64).copy()
            b.flat[rng.randrange(b.size)] = rng.choice([np.nan, np.inf, -np.inf, 1e308, -1e308, 7.5, -1.0, 2.0 ** 60])
            arrays[k] = b
        elif how == "shape":
            arrays[k] = rng.choice([a.reshape(-1), a[None], a.T, np.repeat(a, 2, axis=0) if a.ndim else a[None]])
        elif how == "empty":
            arrays[k] = a[:0] if a.ndim else a.reshape(1)[:0]
        elif how == "drop" and len(arrays) > 1:
            del arrays[k]
        elif how == "add":
            arrays[rng.choice(["extra", k + "_", "labels", "x"])] = np.ones(rng.choice([(1,), (3, 4), ()]))
        elif how == "scalar":
            arrays[k] = np.float64(rng.choice([0.0, np.nan, 1.0]))
    except (ValueError, TypeError, OverflowError):
        pass
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()
