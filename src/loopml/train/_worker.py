"""Training job processes, seen from the caller: start, feed, stop and reap them.

Only the standard library is imported here, so the command line can start a
job process (:func:`prestart_from_argv`) before it loads anything else: the
job imports its library (about half a second for XGBoost) while the command
line starts up, opens the workspace and resolves the data.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import weakref
from collections.abc import Mapping
from typing import Any


def child_env() -> dict[str, str]:
    """The environment of the job: ours, plus the import paths we use that Python would not find."""
    env = dict(os.environ)
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    extra = []
    for p in sys.path:
        if not p or not os.path.isdir(p):
            continue
        real = os.path.realpath(p)
        if any(real == pre or real.startswith(pre + os.sep) for pre in prefixes):
            continue
        extra.append(p)
    if extra:
        old = env.get("PYTHONPATH")
        env["PYTHONPATH"] = os.pathsep.join(extra + ([old] if old else []))
    env["PYTHONUNBUFFERED"] = "1"
    return env


#: the line a job process prints on stdout after each job (the end of that job's log)
JOB_END = "\x1floopml:job-end"


class Worker:
    """A job process: its pipes, the threads reading them, and the queue they fill.

    With ``loop`` it runs job after job (one JSON spec per stdin line) until
    its stdin closes, so repeated fits skip the interpreter and library start-up.
    """

    def __init__(self, preload: list[str], loop: bool = False, algo: str | None = None, *,
                 env: Mapping[str, str] | None = None) -> None:
        self.queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        r, w = os.pipe()
        cr, cw = os.pipe()  # stop requests to the job
        cmd = [sys.executable, "-m", "loopml.train._job", "--events", str(w), "--control", str(cr)]
        if loop:
            cmd.append("--loop")
        for m in preload:
            cmd += ["--preload", m]
        if algo is not None:
            cmd += ["--preload-algo", algo]
        try:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                pass_fds=(w, cr), start_new_session=True, env={**child_env(), **(env or {})}, cwd=os.getcwd(),
            )
        except BaseException:
            os.close(r)
            os.close(cw)
            raise
        finally:
            os.close(w)
            os.close(cr)
        self._events = os.fdopen(r, "rb")
        self._control: int | None = cw
        #: ready for a job (a new process is, once it has imported)
        self.idle = True
        self.jobs = 0
        threading.Thread(target=self._pump_logs, daemon=True, name="loopml-job-logs").start()
        threading.Thread(target=self._pump_events, daemon=True, name="loopml-job-events").start()

    def _pump_logs(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.queue.put(("log", raw.decode("utf-8", errors="replace").rstrip("\r\n")))
        self.queue.put(("eof", "logs"))

    def _pump_events(self) -> None:
        with self._events as f:
            for raw in f:
                try:
                    self.queue.put(("event", json.loads(raw)))
                except ValueError:
                    self.queue.put(("log", f"(unreadable event from the job: {raw[:200]!r})"))
        self.queue.put(("eof", "events"))

    def send(self, spec: Mapping[str, Any]) -> None:
        """Start a job (a dead process shows up as end-of-file on its pipes)."""
        assert self.proc.stdin is not None
        self.idle = False
        self.jobs += 1
        with contextlib.suppress(BrokenPipeError, OSError):
            self.proc.stdin.write((json.dumps(spec) + "\n").encode())
            self.proc.stdin.flush()

    @property
    def alive(self) -> bool:
        """The process is running."""
        return self.proc.poll() is None

    def request_stop(self) -> None:
        """Ask the running job to stop at its next training iteration (the process lives on)."""
        if self._control is None:
            return
        with contextlib.suppress(OSError):
            os.write(self._control, f"{self.jobs}\n".encode())

    def _close_control(self) -> None:
        fd, self._control = self._control, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def kill(self) -> None:
        """Kill the job's whole process group (the job and anything it started)."""
        self.idle = False
        self._close_control()
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def close(self) -> None:
        """End the process: one that finished its job exits on its own (reaped in the background,
        so the caller does not wait for the interpreter to shut down); any other is killed."""
        finished = self.idle and self.jobs > 0
        self.idle = False
        self._close_control()
        if not finished:
            self.kill()
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        if self.proc.poll() is None:
            threading.Thread(target=self._reap, daemon=True, name="loopml-job-reaper").start()
        else:
            self._reap()

    def _reap(self) -> None:
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill()
        if self.proc.stdout is not None:
            with contextlib.suppress(OSError):
                self.proc.stdout.close()


class WorkerPool:
    """Idle job processes kept between fits (``reuse_process=True``); shared by clones."""

    def __init__(self) -> None:
        self._idle: list[Worker] = []
        #: every process handed out for a job and not finished yet (what :meth:`kill_busy` stops)
        self._busy: weakref.WeakSet[Worker] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._finalizer = weakref.finalize(self, WorkerPool._close_all, self._idle)

    def busy(self, worker: Worker) -> None:
        """Note that ``worker`` runs a job for a fit of this pool's estimators."""
        with self._lock:
            self._busy.add(worker)

    def done(self, worker: Worker) -> None:
        """Note that ``worker``'s job is over."""
        with self._lock:
            self._busy.discard(worker)

    def kill_busy(self) -> int:
        """Kill the processes of the jobs running now (their fits fail at once); how many were killed."""
        with self._lock:
            busy = list(self._busy)
        for w in busy:
            w.kill()
        return len(busy)

    def take(self) -> Worker | None:
        with self._lock:
            while self._idle:
                w = self._idle.pop()
                if w.alive:
                    return w
                w.close()
        return None

    def idle_count(self) -> int:
        """How many idle processes are kept."""
        with self._lock:
            return len(self._idle)

    def give(self, worker: Worker) -> None:
        with self._lock:
            self._idle.append(worker)

    def close(self) -> None:
        with self._lock:
            WorkerPool._close_all(self._idle)

    @staticmethod
    def _close_all(workers: list[Worker]) -> None:
        while workers:
            workers.pop().close()


# -- early start -----------------------------------------------------------------------------------
#: job processes started before the caller knew it would need them, by algorithm name
_PRESTARTED: dict[str, Worker] = {}
_PRESTART_LOCK = threading.Lock()


def prestart(algo: str) -> None:
    """Start a job process for the algorithm ALGO now; :func:`take_prestarted` hands it to the fit.

    The process imports ALGO's modules (the job resolves the name itself) and
    then waits for its spec. One that is never used reads end-of-file when
    this process exits, and exits too.
    """
    with _PRESTART_LOCK:
        if algo in _PRESTARTED:
            return
        with contextlib.suppress(OSError):
            _PRESTARTED[algo] = Worker([], loop=False, algo=algo)


def take_prestarted(algo: str) -> Worker | None:
    """The job process :func:`prestart` started for ALGO, if there is one and it is still alive."""
    with _PRESTART_LOCK:
        worker = _PRESTARTED.pop(algo, None)
    if worker is not None and not worker.alive:
        worker.close()
        return None
    return worker


def prestart_from_argv(argv: list[str]) -> None:
    """Start the job process of ``loopml train --algo NAME ...`` before the command line loads.

    ``argv`` is what follows ``train``. Nothing is started for ``--help`` or
    when the algorithm is not given (the command reports that itself).
    """
    if "--help" in argv or os.environ.get("LOOPML_NO_PRESTART"):
        return
    algo = None
    for i, arg in enumerate(argv):
        if arg in ("--algo", "-a") and i + 1 < len(argv):
            algo = argv[i + 1]
        elif arg.startswith("--algo="):
            algo = arg.partition("=")[2]
    if algo and not algo.startswith("-"):
        prestart(algo)
