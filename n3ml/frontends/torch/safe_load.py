"""Reading PyTorch model files without running code from them.

torch's own loaders are not safe on hostile files, even where they look it:

- ``torch.export.load`` (.pt2) retries ``torch.load(weights_only=False)`` when the safe load of the
  sample inputs fails, unpickles "pickled" weights and constants with ``weights_only=False``,
  ``pickle.loads`` opaque constants, loads AOTInductor shared libraries, passes the graph's
  symbolic-shape strings (``expr_str``) to ``sympy.sympify`` (which ``eval``s them), pastes
  ``guards_code`` strings into Python source that ``ExportedProgram.module()`` executes, and imports
  modules named in pytree specs (``collections.defaultdict`` contexts and ``__enum__`` objects).
- ``torch.jit.load`` (TorchScript) runs the archive's ``__setstate__`` methods while loading; they
  can write files (``torch.save``) before n3ml looks at the model.
- Neither checks the zip CRCs, so a flipped bit in a weight converts silently.

So every model file is read once into memory, checked here, and only these checked bytes are handed
to torch: the zip's structure and CRCs; every member that torch would unpickle must pass torch's
restricted (``weights_only``) unpickler; members that torch would execute or import are refused;
strings that torch evaluates must fall in small grammars (an AST whitelist). Unknown .pt2 members
are refused rather than guessed at. docs/security.md lists the checks and why.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import math
import pickle
import re
import struct
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any

import torch

from ...errors import N3mlError
from ...ir.sidecar import SidecarError, open_regular

# A deflated member inflating beyond this many times its size (and past 64 MiB) is a zip bomb, not a model.
MAX_INFLATION = 1000
MAX_MEMBER_BYTES = 1 << 34  # 16 GiB: larger than any model n3ml converts

_NAME = re.compile(r"[\w.\-]{0,1000}", re.ASCII)  # parameter, node and file names inside an archive


def _refuse(path: str, member: str | None, why: str) -> N3mlError:
    where = f"{path}: member `{member}`" if member else path
    return N3mlError(f"{where}: {why}; n3ml refuses to load it")


# ------------------------------------------------------------------------------------------ the file


def read_file(path: str) -> bytes:
    """The bytes of a regular file (a FIFO or device would block or never end): the IR's `open_regular`."""
    try:
        with open_regular(path) as f:
            return f.read()
    except SidecarError as e:
        raise N3mlError(f"{path}: {e}; a model file was expected") from None
    except OSError as e:
        raise N3mlError(f"{path}: cannot read it: {e.strerror or e}") from None


def is_zip(data: bytes) -> bool:
    return data[:4] == b"PK\x03\x04"


def _central_directory_offset(data: bytes) -> int | None:
    """The central directory's offset as the end record states it (zip64 aware), or None."""
    if len(data) < 22 or data[-22:-18] != b"PK\x05\x06":
        return None
    offset = struct.unpack("<I", data[-6:-2])[0]
    if offset != 0xFFFFFFFF:
        return offset
    loc = data[-42:-22]  # zip64 end-of-central-directory locator
    if len(loc) != 20 or loc[:4] != b"PK\x06\x07":
        return None
    rec = struct.unpack("<Q", loc[8:16])[0]
    if rec + 56 > len(data) or data[rec:rec + 4] != b"PK\x06\x06":
        return None
    return struct.unpack("<Q", data[rec + 48:rec + 56])[0]


def zip_members(path: str, data: bytes) -> dict[str, bytes]:
    """Every member of the zip archive `data`, CRC-checked, by name.

    Refuses what two zip readers could read differently (torch uses miniz, this uses Python's
    zipfile): bytes before the first entry or after the end record, duplicate names, encryption.
    """
    if not is_zip(data):
        raise N3mlError(f"{path}: not a zip archive (corrupt or truncated?)")
    cd = _central_directory_offset(data)
    if cd is None:
        raise N3mlError(f"{path}: not a readable zip archive (corrupt or truncated?): it does not end with the "
                        "zip end record")
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        infos = z.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, UnicodeDecodeError, ValueError, OSError, EOFError,
            struct.error, NotImplementedError, RecursionError, MemoryError) as e:  # NotImplementedError: a zip version
        raise N3mlError(f"{path}: not a readable zip archive (corrupt or truncated?): {e}") from None
    if getattr(z, "start_dir", cd) != cd:  # Python shifts offsets past prepended bytes; miniz does not
        raise N3mlError(f"{path}: the zip archive has data before its first entry")
    members: dict[str, bytes] = {}
    for info in infos:
        name = info.filename
        if name in members:
            raise _refuse(path, name, "the archive holds two members of this name")
        if info.flag_bits & 0x1:
            raise _refuse(path, name, "the member is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _refuse(path, name, f"the member uses zip compression method {info.compress_type} "
                                      "(torch writes stored or deflated members)")
        if info.file_size > MAX_MEMBER_BYTES or (
                info.file_size > (64 << 20) and info.file_size > MAX_INFLATION * max(info.compress_size, 1)):
            raise _refuse(path, name, f"the member claims {info.file_size} bytes from {info.compress_size} "
                                      "compressed (a zip bomb?)")
        try:
            members[name] = z.read(info)  # checks the CRC-32 of what it read
        except zipfile.BadZipFile as e:
            why = "its CRC-32 does not match: the file is corrupt" if "CRC" in str(e) else f"unreadable: {e}"
            raise N3mlError(f"{path}: member `{name}`: {why}") from None
        except (zlib.error, EOFError, OSError, ValueError, NotImplementedError) as e:
            raise N3mlError(f"{path}: member `{name}`: unreadable (corrupt?): {e}") from None
    return members


def _root(path: str, members: dict[str, bytes]) -> str:
    """The one top-level folder every member of a torch archive lives in."""
    roots = {n.split("/", 1)[0] for n in members}
    if len(roots) != 1 or any("/" not in n for n in members):
        raise N3mlError(f"{path}: a torch archive keeps all its members in one top-level folder; found "
                        f"{', '.join(sorted(roots)[:5])}")
    for n in members:
        if "\\" in n or n.startswith("/") or ".." in n.split("/"):
            raise _refuse(path, n, "the member's name is not a plain relative path")
    return next(iter(roots)) + "/"


# ------------------------------------------------------------------------------------- pickles


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def check_pickle(path: str, member: str, data: bytes) -> None:
    """Refuse `data` (a torch.save archive or a raw pickle) unless torch's restricted unpickler reads it.

    What the weights_only unpickler accepts holds only tensors and plain containers, so unpickling it
    without the restriction (as torch.export does for some members) runs no code either.
    """
    try:
        with _quiet():
            torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # the restricted unpickler raises UnpicklingError, RuntimeError, ... on refusal
        raise _refuse(path, member, f"it holds a pickle that torch's restricted (weights_only) unpickler "
                                    f"does not accept, so loading it could run code ({_reason(e)})") from None


def _reason(e: Exception) -> str:
    """The line of torch's long weights_only message that says what was refused."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", ln).strip() for ln in str(e).splitlines()]
    lines = [ln for ln in lines if ln] or [type(e).__name__]
    line = next((ln for ln in lines if "Unpickler error" in ln or "Unsupported" in ln), lines[0])
    return line.split(". Please")[0][:200]


@contextlib.contextmanager
def weights_only_torch_load() -> Iterator[None]:
    """While torch.export reads checked bytes, no torch.load may drop the weights_only restriction.

    Belt and braces: the checks above already refuse every member torch would unpickle unsafely; this
    catches a path a future torch adds. (torch.load's weights_only is keyword-only, so every call site
    passes it by name.)
    """
    real = torch.load

    def load(f: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["weights_only"] = True
        return real(f, *args, **kwargs)

    torch.load = load
    try:
        yield
    finally:
        torch.load = real


# --------------------------------------------------------------------- strings torch evaluates

# sympy.sympify(expr_str) evals the string; these are the names torch's serializer writes (srepr of
# sizes: Symbol, Integer, Mul, ...) and torch.utils._sympy.functions, which the deserializer passes in.
_SYMPY_NAMES = frozenset("""
    Symbol Dummy Integer Float Rational Half One Zero NegativeOne Infinity NegativeInfinity oo zoo nan
    IntInfinity NegativeIntInfinity int_oo true false BooleanTrue BooleanFalse
    Add Mul Pow Mod Max Min Abs floor ceiling sign sqrt Piecewise ExprCondPair
    Eq Ne Lt Le Gt Ge Equality Unequality StrictLessThan StrictGreaterThan LessThan GreaterThan
    And Or Not
    FloorDiv ModularIndexing Where PythonMod CleanDiv CeilToInt FloorToInt CeilDiv LShift RShift
    PowByNatural FloatPow FloatTrueDiv IntTrueDiv IsNonOverlappingAndDenseIndicator TruncToFloat
    TruncToInt RoundToInt RoundDecimal ToFloat Identity OpaqueUnaryFn_sqrt BitwiseFn_bitwise_and
    BitwiseFn_bitwise_or BitwiseFn_bitwise_xor
""".split())
_SYMPY_KEYWORDS = frozenset("positive negative nonnegative nonpositive integer real finite nonzero zero "
                            "commutative evaluate precision".split())
_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}", re.ASCII)  # s0, u12, ps3: symbol names
_MAX_EXPR = 20_000  # characters; a symbolic size is a few dozen
_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)
_CMPOPS = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE)


def _small_exponent(node: ast.AST) -> bool:
    """`a ** e` with a literal |e| <= 64: sympy would compute 10**10**10 and hang."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        node = node.operand
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Integer" \
            and len(node.args) == 1:
        node = node.args[0]
    return isinstance(node, ast.Constant) and type(node.value) is int and abs(node.value) <= 64


def _expr_ok(node: ast.AST, names: frozenset[str], attrs: frozenset[str], subscripts: bool) -> str | None:
    """None if every node of the expression is allowed, else what is not."""
    for n in ast.walk(node):
        if isinstance(n, (ast.Expression, ast.Load, ast.And, ast.Or, ast.Not, ast.USub, ast.UAdd, ast.keyword,
                          ast.BoolOp, ast.Tuple, *_BINOPS, *_CMPOPS)):
            continue
        if isinstance(n, ast.Subscript):
            if not subscripts:
                return "a subscript"
        elif isinstance(n, ast.BinOp):
            if not isinstance(n.op, _BINOPS):
                return f"operator {type(n.op).__name__}"
            if isinstance(n.op, ast.Pow) and not _small_exponent(n.right):
                return "a power without a small literal exponent"
        elif isinstance(n, ast.UnaryOp):
            if not isinstance(n.op, (ast.USub, ast.UAdd, ast.Not)):
                return f"operator {type(n.op).__name__}"
        elif isinstance(n, ast.Compare):
            if not all(isinstance(op, _CMPOPS) for op in n.ops):
                return "a comparison other than ==, !=, <, <=, >, >="
        elif isinstance(n, ast.Constant):
            v = n.value
            if type(v) is int and abs(v) >= 1 << 64:
                return "an integer beyond 64 bits"
            if isinstance(v, str) and not _SYMBOL.fullmatch(v):
                return f"the string {v[:40]!r}"
            if not isinstance(v, (int, float, str, type(None))):
                return f"a {type(v).__name__} literal"
        elif isinstance(n, ast.Name):
            if n.id not in names:
                return f"the name `{n.id}`"
        elif isinstance(n, ast.Attribute):
            if n.attr not in attrs:
                return f"the attribute `.{n.attr}`"
        elif isinstance(n, ast.Call):
            f = n.func
            if isinstance(f, ast.Name) and f.id == "Pow" and len(n.args) == 2 and not _small_exponent(n.args[1]):
                return "a power without a small literal exponent"
            if not isinstance(f, (ast.Name, ast.Attribute)):
                return "a call of a computed function"
            if any(k.arg is None or (names is _SYMPY_NAMES and k.arg not in _SYMPY_KEYWORDS) for k in n.keywords):
                return "a keyword argument not used by sympy's constructors"
            if any(isinstance(a, ast.Starred) for a in n.args):
                return "a starred argument"
        else:
            return f"a {type(n).__name__}"
    return None


def _parse(text: str) -> ast.Expression | str:
    if not isinstance(text, str):
        return f"a {type(text).__name__} where a string was expected"
    if len(text) > _MAX_EXPR:
        return f"{len(text)} characters"
    if any(c in text for c in "\n\r\x0b\x0c#\\;") or not text.isprintable():
        return "a line break, comment, backslash or control character"
    try:
        return ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return "text that is not one expression"


def check_sym_expr(text: Any) -> str | None:
    """None if `text` is a symbolic-size expression sympify may evaluate, else why not."""
    tree = _parse(text)
    if isinstance(tree, str):
        return tree
    return _expr_ok(tree, _SYMPY_NAMES, frozenset(), subscripts=False)


# Guards read sizes of the inputs: "L['x'].size()[0] >= 2", "(L['x'].size()[1]*min(64, ...)) == ...". They run
# in a namespace of math, torch, two torch helpers and the builtins; these are the harmless ones they use.
_GUARD_NAMES = _SYMPY_NAMES | frozenset("L math torch inf min max abs int float round bool "
                                        "IsNonOverlappingAndDenseIndicator cast_symbool_to_symint_guardless".split())
_GUARD_ATTRS = frozenset("size stride storage_offset dim numel shape floor ceil trunc sqrt isnan isinf inf "
                         "sym_max sym_min sym_float sym_int sym_not sym_ite sym_sum".split())


def check_guard(text: Any) -> str | None:
    """None if a guards_code entry is a plain condition on input sizes, else why not."""
    tree = _parse(text)
    if isinstance(tree, str):
        return tree
    return _expr_ok(tree, _GUARD_NAMES, _GUARD_ATTRS, subscripts=True)


# pytree node types whose specs torch rebuilds without importing anything (a defaultdict context names
# a module to import; an "__enum__" object too).
_TREESPEC_TYPES = frozenset({None, "builtins.tuple", "builtins.list", "builtins.dict", "collections.OrderedDict",
                             "collections.namedtuple", "collections.deque", "torch.Size",
                             "torch.fx.immutable_collections.immutable_list",
                             "torch.fx.immutable_collections.immutable_dict"})


def _has_enum(obj: Any) -> bool:
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            if "__enum__" in o:
                return True
            stack.extend(o.values())
        elif isinstance(o, list):
            stack.extend(o)
    return False


def check_treespec(text: Any) -> str | None:
    """None if an in_spec/out_spec string rebuilds without imports, else why not."""
    try:
        protocol, schema = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return "not a pytree spec"
    stack = [schema]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict) or not isinstance(node.get("children_spec", []), list):
            return "not a pytree spec"
        if node.get("type") not in _TREESPEC_TYPES:
            return f"the pytree type {str(node.get('type'))[:60]!r}, rebuilt by importing a module"
        context = node.get("context")
        if isinstance(context, str):
            try:
                context = json.loads(context)
            except (ValueError, RecursionError):
                return "a pytree context that is not JSON"
        if _has_enum(context):
            return "an `__enum__` object, rebuilt by importing a module"
        stack.extend(node.get("children_spec", []))
    return None


# call_function targets the deserializer resolves: torch.ops.<namespace>.<op>[.<overload>],
# torch.<sym op>, _operator.<fn>, math.<fn>. Anything else resolves to arbitrary attributes of torch.
_TARGET = re.compile(r"torch\.ops(\.[A-Za-z_][A-Za-z0-9_]*){2,3}|torch\.[A-Za-z_][A-Za-z0-9_]*"
                     r"|_operator\.[A-Za-z_][A-Za-z0-9_]*|math\.[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_NAME_KEYS = frozenset({"name", "parameter_name", "buffer_name", "tensor_constant_name", "custom_obj_name",
                        "user_input_name", "fqn", "forward_arg_names", "path_name"})


def _check_target(text: Any) -> str | None:
    if not isinstance(text, str) or not _TARGET.fullmatch(text) or "__" in text:
        return f"the call target {str(text)[:80]!r} (n3ml reads torch.ops operators)"
    return None


def _check_name(text: Any) -> str | None:
    if isinstance(text, str) and not _NAME.fullmatch(text):
        return f"the name {text[:60]!r} (letters, digits, `_`, `.`, `-` expected)"
    return None


def _check_plain(text: Any) -> str | None:
    """A string argument: ExportedProgram.module() pastes a string input into guard code between quotes."""
    if isinstance(text, str) and (len(text) > 10_000 or any(c in text for c in "'\"\\") or not text.isprintable()):
        return f"the string {text[:60]!r} (quotes, backslashes and control characters are not expected)"
    return None


# JSON key -> check of each string under it (lists of strings inherit their key)
_STRING_CHECKS = {"expr_str": check_sym_expr, "guards_code": check_guard, "in_spec": check_treespec,
                  "out_spec": check_treespec, "target": _check_target, "as_string": _check_plain,
                  "as_strings": _check_plain, **{k: _check_name for k in _NAME_KEYS}}


def _json(path: str, member: str, data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as e:
        raise N3mlError(f"{path}: member `{member}`: not valid JSON (corrupt?): {str(e)[:200]}") from None


# torch counts unbacked symbols up to the largest u<N>/zuf<N> named in range_constraints, one by one
_RANGE_KEY = re.compile(r"[A-Za-z_]{1,8}[0-9]{0,6}", re.ASCII)


def check_program_json(path: str, member: str, data: bytes) -> Any:
    """Parse a .pt2 program (models/*.json) and check every string torch would evaluate or import."""
    doc = _json(path, member, data)
    ranges = doc.get("range_constraints") if isinstance(doc, dict) else None
    for key in ranges if isinstance(ranges, dict) else ():
        if not _RANGE_KEY.fullmatch(key):
            raise _refuse(path, member, f"range_constraints names the symbol {key[:40]!r} (a symbol name such as "
                                        "s0 or u12 was expected)")
    stack: list[tuple[Any, str]] = [(doc, "")]
    while stack:
        obj, key = stack.pop()
        if isinstance(obj, dict):
            stack.extend((v, k) for k, v in obj.items())
        elif isinstance(obj, list):
            stack.extend((v, key) for v in obj)
        elif key in _STRING_CHECKS and isinstance(obj, str):
            why = _STRING_CHECKS[key](obj)
            if why:
                raise _refuse(path, member, f"`{key}` holds {why} (torch evaluates or imports what this field says)")
    return doc


# ---------------------------------------------------------------------------------------- .pt2


def _check_payload_config(path: str, root: str, folder: str, prefix: str, member: str,
                          members: dict[str, bytes], data: bytes) -> None:
    """A weights/constants config: which payloads are raw tensor bytes and which torch unpickles."""
    config = _json(path, member, data)
    entries = config.get("config") if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        raise _refuse(path, member, "not a torch.export payload config")
    for fqn, meta in entries.items():
        if not isinstance(meta, dict) or not isinstance(meta.get("path_name"), str):
            raise _refuse(path, member, f"entry `{str(fqn)[:60]}` is not a payload description")
        name = meta["path_name"]
        if not name.startswith(prefix) or not _NAME.fullmatch(name):
            # constants named custom_obj_* / opaque_obj_* are TorchScript objects and raw pickle.loads
            raise _refuse(path, member, f"entry `{str(fqn)[:60]}` is stored as {name[:60]!r}; n3ml reads only "
                                        f"tensor payloads ({prefix}N), not scripted or pickled Python objects")
        target = f"{root}{folder}{name}"
        if not meta.get("use_pickle") and members.get(target) == b"":
            # torch makes an empty record into torch.zeros(sizes): a lying size would allocate terabytes
            sizes = ((meta.get("tensor_meta") or {}).get("sizes")) or []
            dims = [d.get("as_int") if isinstance(d, dict) else None for d in sizes]
            if not all(type(d) is int and d >= 0 for d in dims) or math.prod(dims) != 0:
                raise _refuse(path, member, f"entry `{str(fqn)[:60]}` stores no bytes but claims the shape "
                                            f"{str(sizes)[:80]}")
        if meta.get("use_pickle"):
            if target not in members:
                raise _refuse(path, member, f"entry `{str(fqn)[:60]}` names the missing member {name}")
            check_pickle(path, target, members[target])


_TEXT_MEMBERS = frozenset({"archive_format", "archive_version", "byteorder", ".data/version",
                           ".data/serialization_id"})


def check_pt2(path: str, data: bytes) -> None:
    """Refuse a .pt2 archive unless torch.export.load can read it without running code from it."""
    members = zip_members(path, data)
    root = _root(path, members)
    rel = {n[len(root):]: n for n in members}
    if members.get(f"{root}archive_format") != b"pt2":
        raise N3mlError(f"{path}: not a torch.export (.pt2) archive (its archive_format member does not say pt2; "
                        "an older torch.export format? re-export it with torch.export.save)")
    models = [r[len("models/"):-len(".json")] for r in rel if r.startswith("models/") and r.endswith(".json")]
    legacy = {f"data/{d}/{m}.pt" for d in ("weights", "constants") for m in models}
    for r, full in rel.items():
        body = members[full]
        if r in _TEXT_MEMBERS or r.startswith("extra/"):
            continue  # read as text
        if r.startswith("models/") and r.endswith(".json"):
            check_program_json(path, full, body)
        elif r.startswith("data/sample_inputs/") and r.endswith(".pt"):
            check_pickle(path, full, body)  # torch retries this one with weights_only=False
        elif r in legacy:
            check_pickle(path, full, body)  # the older single-file weights, unpickled with the same fallback
        elif r.startswith("data/weights/") and r.endswith("_weights_config.json"):
            _check_payload_config(path, root, "data/weights/", "weight_", full, members, body)
        elif r.startswith("data/constants/") and r.endswith("_constants_config.json"):
            _check_payload_config(path, root, "data/constants/", "tensor_", full, members, body)
        elif re.fullmatch(r"data/weights/weight_\d+|data/constants/tensor_\d+", r):
            continue  # raw tensor bytes, or a pickle its config marks (checked with the config)
        elif r.startswith("data/aotinductor/"):
            raise _refuse(path, full, "AOTInductor members are compiled native code that torch loads and runs")
        else:
            raise _refuse(path, full, "n3ml does not know this member of a torch.export archive (torch could "
                                      "unpickle, import or execute it)")
    for m in models:  # torch reads these for every program; a missing one is an error there too
        for need in (f"data/sample_inputs/{m}.pt",):
            if need not in rel:
                raise N3mlError(f"{path}: member `{root}{need}` is missing (truncated archive?)")


# -------------------------------------------------------------------------------- TorchScript


def is_torchscript(members: dict[str, bytes]) -> bool:
    return any(n.endswith("constants.pkl") or "/code/" in n for n in members)


def check_torchscript(path: str, data: bytes) -> dict[str, bytes]:
    """Refuse TorchScript whose loading runs its own code (a scripted __setstate__ runs inside torch.jit.load).

    TorchScript's unpickler builds only TorchScript types, so data.pkl and constants.pkl run no Python; the
    archive's code runs only from __setstate__ during the load (n3ml never calls forward).
    """
    members = zip_members(path, data)
    root = _root(path, members)
    for name, body in members.items():
        if "/code/" in name and b"__setstate__" in body:  # the .py sources (and their .debug_pkl copies)
            raise _refuse(path, name, "its TorchScript code defines __setstate__, which torch.jit.load runs "
                                      "while loading (it can write files); n3ml reads scripted nn.Sequential "
                                      "models of standard layers")
    for pickle_name, folder in (("data.pkl", "data/"), ("constants.pkl", "constants/")):
        if root + pickle_name in members:
            _check_storage_records(path, members, root + pickle_name, root + folder)
    return members


class _Stub:
    """Whatever a TorchScript pickle names: built, filled and ignored (nothing of the archive runs)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


class _StorageScan(pickle.Unpickler):
    """Reads a TorchScript pickle only to list its storages: (key, storage class name, element count)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.storages: list[tuple[str, str, Any]] = []

    def find_class(self, module: str, name: str) -> Any:
        return type(name, (_Stub,), {"qualified": f"{module}.{name}"})

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage":
            self.storages.append((pid[2], getattr(pid[1], "qualified", repr(pid[1])), pid[4]))
        else:
            self.storages.append(("?", repr(pid)[:80], None))
        return _Stub()


def _storage_itemsize(qualified: str) -> int | None:
    module, _, name = qualified.rpartition(".")
    cls = getattr(torch, name, None) if module == "torch" and name.endswith("Storage") else None
    dtype = getattr(cls, "dtype", None)
    return dtype.itemsize if isinstance(dtype, torch.dtype) else None


def _check_storage_records(path: str, members: dict[str, bytes], pickle_member: str, folder: str) -> None:
    """Every storage a TorchScript pickle declares has a record at least as long as declared.

    torch.jit.load trusts the declared element counts: a shorter record is read out of bounds (a crash of the
    whole process, found by the fuzzer), so it is refused here before torch sees the file.
    """
    scan = _StorageScan(members[pickle_member])
    try:
        with _quiet():
            scan.load()
    except Exception as e:  # a damaged pickle: let nothing of it reach torch
        raise _refuse(path, pickle_member, f"its pickle does not read ({type(e).__name__}: {str(e)[:120]})") \
            from None
    for key, kind, numel in scan.storages:
        itemsize = _storage_itemsize(kind)
        if itemsize is None or not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise _refuse(path, pickle_member, f"it declares a storage n3ml does not know ({kind}, key {key!r}, "
                                               f"{numel!r} elements)")
        record = folder + key
        if record not in members:
            raise _refuse(path, pickle_member, f"it declares storage `{record}`, which the archive lacks")
        need = numel * itemsize
        if len(members[record]) < need:
            raise _refuse(path, record, f"the record holds {len(members[record])} bytes where {pickle_member} "
                                        f"declares {numel} x {itemsize} = {need} (truncated or altered)")
