"""The weights sidecar of a .n3ml file: an .npz archive read lazily and defensively.

* Only regular files are opened (a FIFO would block forever, a directory is not a file), without
  blocking on open.
* Nothing is unpickled; object, string, complex, date and structured arrays are refused by their
  header, before any data is read; big-endian and other exactly convertible dtypes are converted
  (`arrays.to_text_dtype`), never truncated.
* An array is read only when the graph refers to it: an unreferenced member costs nothing.
* Before reading, the size the .npy header declares is checked against the bytes the member
  really holds (a lying header is refused) and against the memory available (`budget`), so a
  small archive that would inflate to gigabytes is refused with the estimate, cheaply.

Errors are `SidecarError`s; the parser turns them into located messages.
"""

from __future__ import annotations

import math
import os
import stat
import tokenize
import zipfile

import numpy as np
from numpy.lib import format as npy_format

from .arrays import to_text_dtype
from .budget import ensure_fits
from .types import VerifyError

MAX_HEADER = 10000  # bytes of .npy header numpy itself accepts by default


class SidecarError(Exception):
    """A weights file that cannot be used; the message says why (no location: the caller adds it)."""


_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def open_regular(path: str | os.PathLike):
    """Open `path` for binary reading if it is a regular file; SidecarError otherwise.

    O_NONBLOCK keeps open() itself from waiting for a writer on a FIFO; fstat then decides on the
    object actually opened (no race between a stat and the open).
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise SidecarError("does not exist") from None
    except IsADirectoryError:
        raise SidecarError("is a directory, not a file") from None
    except PermissionError:
        raise SidecarError("cannot be read (permission denied)") from None
    except OSError as e:
        raise SidecarError(f"cannot be opened ({e.strerror or e})") from None
    except ValueError as e:  # a NUL byte or a lone surrogate in the name: no file can have it
        raise SidecarError(f"cannot be opened: the name is not a valid file name ({e})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        kind = next((w for test, w in _FILE_KINDS if test(st.st_mode)), "not a regular file")
        raise SidecarError(f"is {kind}, not a regular file")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


class Sidecar:
    """The arrays of one .npz file, read on first use. Use as a context manager (closes the file)."""

    def __init__(self, path: str | os.PathLike, *, convert=None):
        """Args:
            path: the .npz file.
            convert: (array, key) -> array, the dtype policy; default `arrays.to_text_dtype` (what the IR
                stores). It may raise VerifyError, reported as the array's error.
        """
        self.path = str(path)
        self._convert = convert or to_text_dtype
        self._cache: dict[str, np.ndarray] = {}
        f = open_regular(path)
        try:
            head = f.read(6)
            if head == b"\x93NUMPY":
                raise SidecarError("is a single-array .npy file; a weights sidecar is an .npz archive "
                                   "of named arrays (numpy.savez)")
            f.seek(0)
            self._zip = zipfile.ZipFile(f)
            self._members = {}
            for info in self._zip.infolist():
                key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                self._members[key] = info
        except SidecarError:
            f.close()
            raise
        except UnicodeDecodeError as e:
            f.close()
            raise SidecarError(f"is not a readable .npz archive: a member name is not valid UTF-8 ({e.reason})") from None
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:
            f.close()
            raise SidecarError(f"is not a readable .npz archive ({e})") from None
        self._file = f

    def __enter__(self) -> Sidecar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()
        self._file.close()

    def keys(self) -> list[str]:
        return list(self._members)

    def array_keys(self) -> list[str]:
        """The keys of the .npy members (numpy.savez writes only those)."""
        return [k for k, info in self._members.items() if info.filename.endswith(".npy")]

    def __contains__(self, key: str) -> bool:
        return key in self._members

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._cache:
            self._cache[key] = self._read(key)
        return self._cache[key]

    def _read(self, key: str) -> np.ndarray:
        info = self._members[key]
        if not info.filename.endswith(".npy"):
            raise SidecarError(f"member {info.filename!r} is not a .npy array")
        try:
            with self._zip.open(info) as m:
                shape, fortran, dtype = _header(m, key)
                try:  # refuse an unusable dtype by its header, before reading any data
                    self._convert(np.empty(0, dtype), key)
                except VerifyError as e:
                    raise SidecarError(e.detail) from None
                count = math.prod(shape)
                nbytes = count * dtype.itemsize
                held = info.file_size - m.tell()
                if nbytes > held:
                    raise SidecarError(f"array `{key}`: its header declares shape {shape} of {dtype.str} "
                                       f"({nbytes} bytes) but the archive member holds only {max(held, 0)} bytes")
                try:
                    ensure_fits(nbytes, f"array `{key}` (shape {shape}, {dtype.str})")
                except VerifyError as e:
                    raise SidecarError(str(e)) from None
                arr = np.empty(count, dtype)
                view = memoryview(arr.view(np.uint8)) if nbytes else memoryview(b"")  # any dtype, as bytes
                got = 0
                while got < nbytes:
                    n = m.readinto(view[got:])
                    if not n:
                        raise SidecarError(f"array `{key}` is truncated: {got} of {nbytes} bytes")
                    got += n
                if m.read(1):
                    raise SidecarError(f"array `{key}` has more data than its header declares")
        except zipfile.BadZipFile as e:
            raise SidecarError(f"array `{key}` is corrupt ({e})") from None
        except (OSError, EOFError, ValueError, NotImplementedError, RuntimeError) as e:
            raise SidecarError(f"array `{key}` cannot be read ({e})") from None
        arr = arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)
        try:
            return np.ascontiguousarray(self._convert(arr, key))
        except VerifyError as e:
            raise SidecarError(e.detail) from None


def _header(m, key: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """The .npy header of an archive member, checked before any data is read."""
    try:
        version = npy_format.read_magic(m)
        if version == (1, 0):
            shape, fortran, dtype = npy_format.read_array_header_1_0(m, max_header_size=MAX_HEADER)
        elif version == (2, 0):
            shape, fortran, dtype = npy_format.read_array_header_2_0(m, max_header_size=MAX_HEADER)
        else:
            raise SidecarError(f"array `{key}`: .npy format version {version[0]}.{version[1]} is not read "
                               "(numpy.savez writes 1.0 or 2.0)")
    except SidecarError:
        raise
    except (ValueError, SyntaxError, TypeError, OverflowError, EOFError, tokenize.TokenError) as e:
        # numpy tokenizes the header dict: an unbalanced one raises tokenize's TokenError (not a ValueError)
        raise SidecarError(f"array `{key}` has no valid .npy header ({e})") from None
    if not all(isinstance(d, int) and d >= 0 for d in shape):
        raise SidecarError(f"array `{key}` declares an invalid shape {shape!r}")
    if dtype.hasobject:
        raise SidecarError(f"array `{key}` holds Python objects (dtype {dtype.str}); they are never unpickled")
    return tuple(shape), bool(fortran), dtype
