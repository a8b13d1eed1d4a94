"""Builders of hostile model files: copies of the bundled digits SNN with one member replaced."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parents[2]
DIGITS_PT2 = REPO / "examples" / "digits" / "digits_snn.pt2"


class Payload:
    """Unpickling this writes `marker`: the proof that a loader ran code from the file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


def evil_torch_save(marker: Path) -> bytes:
    """A torch.save archive whose data.pkl runs code (what torch.export retries with weights_only=False)."""
    import torch

    buf = io.BytesIO()
    torch.save({"x": Payload(marker)}, buf)
    return buf.getvalue()


def evil_pickle(marker: Path) -> bytes:
    import pickle

    return pickle.dumps(Payload(marker))


def rewrite_zip(src: Path, dst: Path, edit: Callable[[str, bytes], bytes | None],
                add: dict[str, bytes] | None = None) -> Path:
    """Copy the zip `src` to `dst`, passing each member through `edit` (None drops it), then add `add`."""
    with zipfile.ZipFile(src) as zi, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zo:
        for info in zi.infolist():
            body = edit(info.filename, zi.read(info.filename))
            if body is not None:
                zo.writestr(info.filename, body)
        for name, body in (add or {}).items():
            zo.writestr(name, body)
    return dst


def edit_json(member_suffix: str, fn: Callable[[dict], None]) -> Callable[[str, bytes], bytes]:
    def edit(name: str, body: bytes) -> bytes:
        if name.endswith(member_suffix):
            doc = json.loads(body)
            fn(doc)
            return json.dumps(doc).encode()
        return body
    return edit


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "PAYLOAD_RAN"
