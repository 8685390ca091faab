"""Outputs written whole or not at all, one writer at a time.

:func:`written` is how a command writes its ``--out``: it takes a lock beside ``OUT`` (a second run
into the same place stops at once with one line naming the first), lets the work write into a
temporary folder (or file) beside ``OUT``, and only when all of it is there puts it in ``OUT``'s
place. An interrupted run leaves ``OUT`` as it was, complete; the next run into the same place
says what the interrupted one left and removes it.

    with written(out, log=print) as tmp:    # tmp: a folder beside out, empty
        write_everything(tmp)
    # out now holds exactly what was written into tmp

The moment between moving the old ``OUT`` aside and the new one into place is two renames on one
filesystem; a run stopped between them leaves the old set under ``.OUT.old-PID``, which the next
run puts back. ``$LENS_FOCUS_PAUSE_AT`` (``swap``) makes a run wait before that moment, with a
file ``.OUT.paused`` saying so: tests stop a run there to check that nothing half-written stays.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Literal

from filelock import FileLock, Timeout

from .errors import InputError

Kind = Literal["folder", "file"]
PAUSE = "LENS_FOCUS_PAUSE_AT"


def _beside(out: Path, what: str) -> Path:
    return out.parent / f".{out.name}.{what}"


def check_out(out: str | Path, kind: Kind = "folder", *, option: str = "--out") -> Path:
    """``out`` where a ``kind`` can be written: an existing file where a folder goes (or the other
    way round), or a parent that is a file, is an :class:`~lens_focus.errors.InputError` naming
    ``option``; checked before any work."""
    out = Path(out)
    if kind == "folder" and out.is_file():
        raise InputError(f"{option}: {out} is a file; a folder of results goes there")
    if kind == "file" and out.is_dir():
        raise InputError(f"{option}: {out} is a folder; a file goes there (give a file name, e.g. {out / 'directions.safetensors'})")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{option}: {parent} is a file, so {out} cannot be made")
            break
    return out


def _holder(lock_info: Path) -> str:
    try:
        info = json.loads(lock_info.read_text())
        return f"process {info['pid']} on {info['host']}, started {info['started']}: {info['command']}"
    except (OSError, ValueError, KeyError):
        return "another process"


@contextmanager
def lock(out: Path, *, option: str = "--out") -> Iterator[None]:
    """Hold the lock of ``out`` (a file ``.OUT.lock`` beside it) while the block runs; a second
    holder gets one line naming the first."""
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(_beside(out, "lock"), "a"):  # a folder that cannot be written fails here, not as a lock held by someone
            pass
        held = FileLock(_beside(out, "lock"))
        held.acquire(timeout=0)
    except Timeout:
        raise InputError(f"{option}: {out} is being written by {_holder(_beside(out, 'lock.json'))}; wait for it, or write elsewhere") from None
    except OSError as e:
        raise InputError(f"{option}: cannot write beside {out} ({e.strerror or e})") from None
    info = _beside(out, "lock.json")
    try:
        info.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv),
                                    "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}))  # fmt: skip
        yield
    finally:
        info.unlink(missing_ok=True)
        held.release()


def _tidy(out: Path, log: Callable[[str], None]) -> None:
    """What an interrupted run left beside ``out``: a half-written set (removed) and an old set moved
    aside for a swap that never finished (put back when ``out`` is missing, else removed)."""
    for left in sorted(out.parent.glob(f".{out.name}.partial-*")):
        log(f"note   removed {left.name}: the unfinished output of an interrupted run into {out}")
        shutil.rmtree(left) if left.is_dir() else left.unlink()
    for old in sorted(out.parent.glob(f".{out.name}.old-*")):
        if not out.exists():
            old.rename(out)
            log(f"note   put back {out}: a run was interrupted while replacing it")
        else:
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    _beside(out, "paused").unlink(missing_ok=True)


def _pause(out: Path, at: str) -> None:
    if os.environ.get(PAUSE) == at:
        marker = _beside(out, "paused")
        marker.write_text(str(os.getpid()))
        try:
            time.sleep(float(os.environ.get("LENS_FOCUS_PAUSE_SECONDS", "60")))
        finally:
            marker.unlink(missing_ok=True)


@contextmanager
def written(out: str | Path, kind: Kind = "folder", *, log: Callable[[str], None] = print, option: str = "--out") -> Iterator[Path]:
    """A temporary ``kind`` beside ``out`` to write into, which replaces ``out`` when the block ends
    without an error (see the module docstring); under the lock of ``out``."""
    out = check_out(out, kind, option=option)
    with lock(out, option=option):
        _tidy(out, log)
        tmp = _beside(out, f"partial-{os.getpid()}")
        if kind == "folder":
            tmp.mkdir()
        try:
            yield tmp
            if kind == "folder" or tmp.exists():
                _pause(out, "swap")
                old = _beside(out, f"old-{os.getpid()}")
                if out.exists():
                    out.rename(old)
                tmp.rename(out)
                if old.exists():
                    shutil.rmtree(old) if old.is_dir() else old.unlink()
        finally:
            if tmp.exists():
                shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
