"""Helpers shared by the benchmark scripts of this folder (not a benchmark itself).

The scripts are run as ``python bench/NAME.py``; each puts this folder on ``sys.path``
and does ``import _common``. Most measure in child processes: the parent re-runs its own
script with ``--child MODE ARGS...`` (:func:`run_child`), and the child prints its result
as one line of JSON with its peak RSS (:func:`print_child_result`).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
GEN_HELP = "path of gen_data.py (default: ../shared/bench/gen_data.py from the repo)"
SRC_ENV = "LOOPML_BENCH_SRC"


# -- data -------------------------------------------------------------------------------
def find_gen(override: str | None) -> Path:
    """The ``gen_data.py`` to use: ``override`` (a file or its folder), else the shared one."""
    candidates = [Path(override)] if override else [
        REPO.parent / "shared" / "bench" / "gen_data.py",
        REPO / "shared" / "bench" / "gen_data.py",
    ]
    for c in candidates:
        c = c / "gen_data.py" if c.is_dir() else c
        if c.is_file():
            return c.resolve()
    sys.exit(f"cannot find gen_data.py (looked at {', '.join(map(str, candidates))}); pass --gen PATH")


def load_gen(path: Path) -> ModuleType:
    """Import ``gen_data.py`` from ``path`` (it is no package) and return the module."""
    spec = importlib.util.spec_from_file_location("loopml_bench_gen_data", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# -- which loopml -----------------------------------------------------------------------
def export_src(src: str | None) -> None:
    """Have the children import loopml from ``src`` (the ``--src`` flag), if given."""
    if src:
        os.environ[SRC_ENV] = str(Path(src).resolve())


def use_src(src: str | None = None) -> None:
    """Put loopml's source folder first on ``sys.path``: ``src``, else the one
    :func:`export_src` chose, else this checkout's ``src/``."""
    sys.path.insert(0, src or os.environ.get(SRC_ENV) or str(REPO / "src"))


# -- children ---------------------------------------------------------------------------
def peak_rss() -> int:
    """Peak resident set size of this process so far, in bytes (Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def print_child_result(res: dict[str, Any]) -> None:
    """In a child: add its peak RSS to ``res`` and print it as the last line of JSON."""
    res["peak_rss"] = peak_rss()
    print(json.dumps(res))


def run_child(mode: str, *args: str, time_key: str = "process_seconds",
              script: str | Path | None = None) -> dict[str, Any]:
    """Run ``script`` (default: the running ``__main__`` script) with ``--child MODE ARGS...``
    and return the JSON of its last stdout line, plus its whole wall time under ``time_key``.
    Exits with its stderr's tail if it fails."""
    path = Path(script if script is not None else sys.modules["__main__"].__file__ or "").resolve()
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(path), "--child", mode, *args],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        sys.exit(f"{mode} run failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    res: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    res[time_key] = time.perf_counter() - t0
    return res


# -- statistics -------------------------------------------------------------------------
def median_run(runs: list[dict[str, Any]], *, all_seconds: bool = False) -> dict[str, Any]:
    """The median run by ``"seconds"`` (the lower one of an even count; the run itself, so
    its RSS goes with it). With ``all_seconds``, a copy with every run's seconds added."""
    runs = sorted(runs, key=lambda r: float(r["seconds"]))
    mid = runs[(len(runs) - 1) // 2]
    if not all_seconds:
        return mid
    return {**mid, "all_seconds": [round(float(r["seconds"]), 3) for r in runs]}


def percentile(samples: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of ``samples``."""
    s = sorted(samples)
    return s[min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1)]


def verdict(ok: bool) -> str:
    """``"ok"`` or ``"MISSED"``, for a target."""
    return "ok" if ok else "MISSED"


# -- redis ------------------------------------------------------------------------------
class PrivateRedis:
    """A private redis-server on a free port of 127.0.0.1, in a temporary folder, with no
    persistence; started on creation, stopped by :meth:`stop` or on leaving a ``with``.

    Raises :class:`RuntimeError` if there is no ``redis-server`` or it does not answer a
    ``PING`` within ``timeout`` seconds.
    """

    def __init__(self, timeout: float = 20.0) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server not found")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.dir = tempfile.mkdtemp(prefix="loopml-bench-redis-")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir, "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not start")

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        """Stop the server (killing it after 10 s) and remove its folder."""
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PrivateRedis:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
