"""The mutation fuzzer over the example files: one family per kind of file n3ml reads, each a seed file, how to
mutate it and the commands a mutant is fed to (in-process, through `n3ml.cli.main`)."""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .harness import ROOT, Outcome, Tally, case_dir, roundtrip, run_cli
from .mutate import mutate_bytes, mutate_file

GRAPHS = sorted((ROOT / "examples").rglob("*.n3ml"))
DIGITS = ROOT / "examples" / "digits"
ANN = ROOT / "examples" / "ann_to_snn"


def _input_npz() -> bytes:
    """A valid --input file for spiking_mlp (x: spike[16]), 4 steps, batch 2."""
    buf = io.BytesIO()
    np.savez(buf, x=(np.random.default_rng(0).random((4, 2, 16)) < 0.3).astype(np.float64))
    return buf.getvalue()


def _calibration_npz() -> bytes:
    z = np.load(ANN / "calib.npz")
    buf = io.BytesIO()
    np.savez(buf, x=z["x"][:4], labels=z["labels"][:4])
    return buf.getvalue()


_RATES: list[bytes] = []


def _rates_npz() -> bytes:
    """A valid `show --rates` file: `simulate -o` of spiking_mlp recording every layer (made once)."""
    if not _RATES:
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "rates.npz"
            run_cli(["simulate", str(ROOT / "examples" / "graphs" / "spiking_mlp.n3ml"), "--steps", "5",
                     "--record", "x,lif1,lif2", "-o", str(out)])
            _RATES.append(out.read_bytes())
    return _RATES[0]


def _sidecar_of(graph: Path) -> Path | None:
    p = graph.with_suffix(".npz")
    return p if p.exists() else None


# --------------------------------------------------------------------- drivers
# A driver writes a mutant into a case directory and runs the commands it feeds; it returns the outcomes.


def _graph_text(rng: random.Random, d: Path) -> tuple[str, dict[str, bytes], list[Outcome]]:
    src = rng.choice(GRAPHS)
    how, text = mutate_bytes(rng, src.read_bytes())
    files = {src.name: text}
    side = _sidecar_of(src)
    if side is not None:
        files[side.name] = side.read_bytes()
    for name, data in files.items():
        (d / name).write_bytes(data)
    path = d / src.name
    outs = [run_cli(["check", str(path)])]
    if outs[0].kind == "ok":
        rt = roundtrip(path)
        if rt is not None:
            outs.append(rt)
        outs.append(run_cli(["simulate", str(path), "--steps", "2"]))
        outs.append(run_cli(["show", str(path)]))
    return f"{src.name} {how}", files, outs


def _sidecar(rng: random.Random, d: Path) -> tuple[str, dict[str, bytes], list[Outcome]]:
    src = rng.choice([g for g in GRAPHS if _sidecar_of(g) is not None])
    side = _sidecar_of(src)
    how, data = mutate_file(rng, side.read_bytes(), is_zip=True, npz=True)
    files = {src.name: src.read_bytes(), side.name: data}
    for name, b in files.items():
        (d / name).write_bytes(b)
    path = d / src.name
    outs = [run_cli(["check", str(path)])]
    if outs[0].kind == "ok":
        outs.append(run_cli(["simulate", str(path), "--steps", "2"]))
    return f"{side.name} {how}", files, outs


def _input(rng: random.Random, d: Path) -> tuple[str, dict[str, bytes], list[Outcome]]:
    """A valid --input file for a random example graph (spike, analog or fixed-point inputs), mutated."""
    from n3ml.io import random_inputs
    from n3ml.ir.text import load

    src = rng.choice(GRAPHS)
    for f in (src, src.with_suffix(".npz")):
        if f.exists():
            (d / f.name).write_bytes(f.read_bytes())
    buf = io.BytesIO()
    np.savez(buf, **random_inputs(load(src), 4, 2, seed=rng.randrange(100)))
    how, data = mutate_file(rng, buf.getvalue(), is_zip=True, npz=True)
    (d / "in.npz").write_bytes(data)
    engine = rng.choice(["reference", "torch"])
    outs = [run_cli(["simulate", str(d / src.name), "--steps", rng.choice(["3", "4", "5"]), "--input",
                     str(d / "in.npz"), "--engine", engine])]
    return f"input.npz for {src.name} {how} ({engine})", {"in.npz": data}, outs


def _rates(rng: random.Random, d: Path) -> tuple[str, dict[str, bytes], list[Outcome]]:
    how, data = mutate_file(rng, _rates_npz(), is_zip=True, npz=True)
    (d / "rates.npz").write_bytes(data)
    graph = ROOT / "examples" / "graphs" / "spiking_mlp.n3ml"
    return f"rates.npz {how}", {"rates.npz": data}, [run_cli(["show", str(graph), "--rates", str(d / "rates.npz")])]


def _model(paths: list[Path], extra: list[str], is_zip: bool):
    def driver(rng: random.Random, d: Path) -> tuple[str, dict[str, bytes], list[Outcome]]:
        src = rng.choice(paths)
        how, data = mutate_file(rng, src.read_bytes(), is_zip=is_zip)
        path = d / src.name
        path.write_bytes(data)
        if extra:  # a state_dict: only `convert` knows the model class
            outs = [run_cli(["convert", str(path), "--target", "ir", "-o", str(d / "out"), *extra])]
        else:
            outs = [run_cli(["check", str(path)])]
            if outs[0].kind == "ok":
                outs.append(run_cli(["convert", str(path), "--target", "ir", "-o", str(d / "out")]))
        return f"{src.name} {how}", {src.name: data}, outs

    return driver


def _calibration(rng: random.Random, d: Path) -> tuple[str, dict[str, bytes], list[Outcome]]:
    how, data = mutate_file(rng, _calibration_npz(), is_zip=True, npz=True)
    (d / "cal.npz").write_bytes(data)
    outs = [run_cli(["convert", str(ANN / "cnn.onnx"), "--target", "ir", "-o", str(d / "out"), "-p",
                     "fold-batchnorm,ann-to-snn,normalize{percentile=99.9}", "--calibration", str(d / "cal.npz"),
                     "--steps", "4", "--report", str(d / "report.json")])]
    if outs[0].kind == "ok":
        try:  # the report must be strict JSON
            json.loads((d / "report.json").read_text(), parse_constant=_no_constant)
        except (ValueError, OSError) as e:
            outs.append(Outcome("roundtrip", 0, "", f"--report is not strict JSON: {e}"))
    return f"calib.npz {how}", {"cal.npz": data}, outs


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _args(rng: random.Random, d: Path) -> tuple[str, dict[str, bytes], list[Outcome]]:
    """Random option values (numbers out of range, NaN, bad paths, FIFOs) for a random command, built from the
    parser itself so that new options are fuzzed too. Every path points into the case directory."""
    import os

    from n3ml.cli import build_parser

    parser, modules = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    cmd = rng.choice(sorted(c for c in modules if c != "verify"))  # verify runs simulators: too slow per case
    graph = ROOT / "examples" / "graphs" / "spiking_mlp.n3ml"
    for f in (graph, graph.with_suffix(".npz")):
        (d / f.name).write_bytes(f.read_bytes())
    (d / "in.npz").write_bytes(_input_npz())
    os.mkfifo(d / "fifo")
    paths = [str(d / "missing" / "x.npz"), str(d), str(d / "in.npz"), str(d / "fifo"), str(d / "new.npz"),
             str(d / "out.png"), str(d / "spiking_mlp.npz") + "/x", str(d / "out"), ""]
    numbers = ["nan", "inf", "-inf", "-1", "0", "1", "3", "1e23", "1e400", "2.5", "abc", "-0", "1e-300", "0x10",
               "18446744073709551616", " 2", "1_0"]
    words = ["torch", "reference", "cpu", "cuda", "bogus", "x", "lif1", "x,out", "fc1", "ir", "nest", "a=b", "=",
             "svg", "png", "dot", "spike", "analog", "normalize{percentile=nan}", "quantize{profile=loihi2}", "{"]
    argv = [cmd, str(d / graph.name)]
    for action in sub.choices[cmd]._actions:
        flags = [o for o in action.option_strings if o.startswith("--")] or action.option_strings
        if not flags or flags[0] in ("--help", "--write", "--force") or (not action.required and rng.random() < 0.6):
            continue
        argv.append(flags[0])
        if action.nargs != 0:
            argv.append(rng.choice(rng.choice([paths, numbers, words])))
    # a word may land where a path is expected (render -o nest): relative paths resolve in the case directory
    here = os.getcwd()
    os.chdir(d)
    try:
        return " ".join(argv[:1] + argv[2:]), {}, [run_cli(argv)]
    finally:
        os.chdir(here)


def _digits_args() -> list[str]:
    meta = json.loads((DIGITS / "digits_snn.json").read_text())
    return ["--model", meta["model"], "--model-args", json.dumps(meta["model_args"]),
            "--input-shape", str(meta["model_args"]["n_in"])]


@dataclass(frozen=True)
class Family:
    name: str
    weight: float  # share of the budget
    driver: Callable


def families() -> list[Family]:
    fams = [Family("n3ml", 0.30, _graph_text), Family("sidecar", 0.20, _sidecar), Family("input", 0.10, _input),
            Family("onnx", 0.14, _model(sorted(ANN.glob("*.onnx")), [], is_zip=False)),
            Family("calibration", 0.04, _calibration), Family("args", 0.10, _args),
            Family("rates", 0.04, _rates)]
    if (DIGITS / "digits_snn.pt2").exists():
        fams.append(Family("pt2", 0.12, _model([DIGITS / "digits_snn.pt2"], [], is_zip=True)))
    if (DIGITS / "digits_snn.pt").exists():
        fams.append(Family("pt", 0.10, _model([DIGITS / "digits_snn.pt"], _digits_args(), is_zip=True)))
    return fams


def fuzz_family(fam: Family, cases: int, seed: int, work: Path, tally: Tally) -> None:
    """Run `cases` mutants of one family; case k of seed s is the same mutant on every machine."""
    for k in range(cases):
        rng = random.Random(f"{seed}:{fam.name}:{k}")
        with case_dir(work) as d:
            label, files, outs = fam.driver(rng, d)
        worst = next((o for o in outs if o.failed), outs[-1])
        tally.add(fam.name, worst, f"seed {seed} case {k}: {label}", files)


def split(total: int, fams: list[Family]) -> dict[str, int]:
    """The budget shared by weight, at least one case per family."""
    w = sum(f.weight for f in fams)
    return {f.name: max(1, round(total * f.weight / w)) for f in fams}
