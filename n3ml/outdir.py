"""Writing an output directory OUT safely: `n3ml convert -o OUT [--force]`.

    with OutputDir(Path("out/lava"), force=False) as tmp:   # takes the lock, cleans stale temporaries
        write_everything_into(tmp)                         # .lava.tmp-<pid>-<random>/ beside OUT
    # on success tmp has become OUT; on any error (or Ctrl-C) tmp is removed and OUT is untouched

- One writer at a time: an exclusive `flock` on `.OUT.lock` beside OUT, held from before the model is
  read until OUT is in place. A second run on the same OUT fails at once, naming the holder's pid.
  The holder unlinks the lock file before releasing it; a run that locked a file that was unlinked
  meanwhile sees a different inode at the path and tries again, so two runs never both hold "the" lock.
- No moment without OUT under --force: the new tree and the old one are swapped by one
  `renameat2(RENAME_EXCHANGE)` (Linux 3.15+), then the old tree, now under the temporary name, is
  removed. Where the kernel or file system lacks it, the old tree is renamed aside first and the new
  one renamed in right after (a window of two renames), then the old one is removed.
- Without --force, the final rename is `RENAME_NOREPLACE`: an OUT that appeared meanwhile (made by
  something other than n3ml, which would have needed the lock) is never replaced.
- --force replaces only a directory that holds none of the run's inputs (the model, calibration data),
  the working directory or the home directory: `-o ~ --force` or `-o out --force` with the model in
  out/ would otherwise delete them.
- A killed run (SIGKILL, power loss) leaves `.OUT.tmp-<pid>-*` or `.OUT.old-<pid>-*`; the next run on
  OUT removes those whose process is gone.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

from .errors import N3mlError

try:
    import fcntl
except ImportError:  # Windows: no flock; the no-replace rename still refuses to clobber
    fcntl = None  # type: ignore[assignment]

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2


def _renameat2(src: Path, dst: Path, flags: int) -> bool:
    """rename(2) with flags; False if this system cannot (no renameat2, or a file system without it)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(src), None, str(dst))


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False where the system cannot."""
    return _renameat2(a, b, _RENAME_EXCHANGE)


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename src to dst, failing with FileExistsError if dst exists (atomically where possible)."""
    if _renameat2(src, dst, _RENAME_NOREPLACE):
        return
    if os.path.lexists(dst):  # fallback: rename(2) would replace an empty directory
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst))
    os.rename(src, dst)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    except OSError:
        return True
    return True


def remove_tree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except OSError:
            pass


class OutputDir:
    """Context manager: yields a fresh temporary directory that becomes `out` on success."""

    def __init__(self, out: Path, *, force: bool = False, keep: tuple[str | os.PathLike, ...] = ()):
        """`keep`: paths that --force must not delete (the run's inputs)."""
        self.out = Path(out)
        self.force = force
        self.keep = tuple(Path(p) for p in keep if p)
        self.parent = self.out.parent
        self.lock_path = self.parent / f".{self.out.name}.lock"
        self._lock_fd: int | None = None
        self.tmp: Path | None = None
        self.removed_stale: list[Path] = []

    # ------------------------------------------------------------------ before any work

    def _check(self) -> None:
        out = self.out
        if not out.name or out.name in (".", ".."):
            raise N3mlError(f"{out}: -o must name a directory to create, not {str(out)!r}")
        if out.is_symlink():
            raise N3mlError(f"{out}: is a symbolic link; -o names the output directory to create, and n3ml does "
                            "not write through or replace links")
        if out.exists() and not out.is_dir():
            raise N3mlError(f"{out}: exists and is not a directory; -o names the output directory")
        if out.exists() and not self.force:
            raise N3mlError(f"{out} exists; pass --force to replace it")
        if out.exists():
            self._check_force()
        try:
            self.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise N3mlError(f"{out}: cannot create its parent {self.parent}: a file is in the way") from None
        except PermissionError:
            raise N3mlError(f"{out}: cannot create its parent {self.parent}: permission denied") from None
        except OSError as e:
            raise N3mlError(f"{out}: cannot create its parent {self.parent}: {e.strerror or e}") from None
        if not os.access(self.parent, os.W_OK | os.X_OK):
            raise N3mlError(f"{out}: permission denied: cannot write into {self.parent}")

    def _check_force(self) -> None:
        """Refuse --force when replacing OUT would delete an input, the working or the home directory."""
        real = self.out.resolve()
        protected = [(p, "an input of this run") for p in self.keep]
        protected += [(Path.cwd(), "the working directory"), (Path.home(), "the home directory")]
        for p, what in protected:
            try:
                q = p.resolve()
            except (OSError, RuntimeError):
                continue
            if q == real or real in q.parents:
                raise N3mlError(f"{self.out}: --force would delete {p} ({what}), which is inside it; choose "
                                "another -o")

    def _lock(self) -> None:
        if fcntl is None:
            return
        for _ in range(100):  # retried only when the holder unlinked the file between our open and flock
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise N3mlError(f"{self.out}: cannot create the lock file {self.lock_path}: "
                                f"{e.strerror or e}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                os.close(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise N3mlError(f"{self.out}: another n3ml convert{f' (pid {holder})' if holder else ''} is "
                                    "writing it now; wait for it to finish or choose another -o") from None
                raise N3mlError(f"{self.out}: cannot lock {self.lock_path}: {e.strerror or e}") from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.lock_path))
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.pwrite(fd, str(os.getpid()).encode(), 0)
                self._lock_fd = fd
                return
            os.close(fd)
        raise N3mlError(f"{self.out}: cannot lock {self.lock_path}: it keeps being replaced")

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            try:
                os.unlink(self.lock_path)  # while still holding it: see the module docstring
            except OSError:
                pass
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    def _clean_stale(self) -> None:
        """Remove temporaries of earlier runs on OUT whose process is gone (killed mid-write)."""
        pattern = re.compile(re.escape(f".{self.out.name}.") + r"(?:tmp|old)-(\d+)-")
        try:
            entries = list(os.scandir(self.parent))
        except OSError:
            return
        for entry in entries:
            m = pattern.match(entry.name)
            if m and not _alive(int(m.group(1))):
                remove_tree(Path(entry.path))
                self.removed_stale.append(Path(entry.path))

    def _mkdtemp(self, kind: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f".{self.out.name}.{kind}-{os.getpid()}-", dir=self.parent))

    # ------------------------------------------------------------------ the context

    def __enter__(self) -> Path:
        self._check()
        self._lock()
        try:
            if self.out.exists() and not self.force:  # made between the first check and the lock
                raise N3mlError(f"{self.out} exists; pass --force to replace it")
            self._clean_stale()
            self.tmp = self._mkdtemp("tmp")
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(self.tmp, 0o777 & ~mask)  # mkdtemp makes it 0700; OUT gets the usual permissions
        except BaseException:
            self._unlock()
            raise
        return self.tmp

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc_type is None:
                self._commit()
            elif self.tmp is not None:
                remove_tree(self.tmp)
        finally:
            self._unlock()

    def _commit(self) -> None:
        if self.tmp is None:
            raise RuntimeError("OutputDir committed before it was entered")
        tmp, out = self.tmp, self.out
        try:
            if out.exists() or out.is_symlink():
                if not self.force:
                    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(out))
                if exchange(tmp, out):  # OUT is the new tree; tmp holds the old one
                    remove_tree(tmp)
                    return
                old = self._mkdtemp("old")
                old.rmdir()
                os.rename(out, old)
                try:
                    os.rename(tmp, out)
                except OSError:
                    os.rename(old, out)  # put the old output back rather than leave none
                    raise
                remove_tree(old)
                return
            rename_noreplace(tmp, out)
        except FileExistsError:
            remove_tree(tmp)
            raise N3mlError(f"{out} appeared while converting (not made by n3ml, which holds the lock); it was "
                            "left as it is; pass --force to replace it") from None
        except OSError as e:
            remove_tree(tmp)
            raise N3mlError(f"{out}: cannot move the finished output into place: {e.strerror or e}") from None
