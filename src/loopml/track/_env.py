"""What a run records about where it ran: code version, package versions, user and host.

All of it is cheap: two short ``git`` subprocesses (cached per working
directory by the tracker) and ``importlib.metadata`` look-ups (cached for the
process, as installed versions do not change under a running interpreter).
Nothing here imports the packages it reports on.
"""

from __future__ import annotations

import functools
import getpass
import importlib.metadata
import logging
import os
import platform
import socket
import subprocess
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

#: seconds each git command may take before the code version is given up on
GIT_TIMEOUT_S = 3.0

#: reported name -> distribution names to try, in order
_PACKAGES: dict[str, tuple[str, ...]] = {
    "loopml": ("loopml",),
    "numpy": ("numpy",),
    "pandas": ("pandas",),
    "pyarrow": ("pyarrow",),
    "scikit-learn": ("scikit-learn",),
    "xgboost": ("xgboost", "xgboost-cpu"),
    "lightgbm": ("lightgbm",),
    "torch": ("torch",),
}


@dataclass(frozen=True)
class CodeVersion:
    """The git commit a run's code came from.

    Attributes
    ----------
    commit
        The full commit hash of ``HEAD``.
    dirty
        True when tracked files had uncommitted changes.
    repo
        The repository's top-level folder.
    """

    commit: str
    dirty: bool
    repo: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"commit": self.commit, "dirty": self.dirty, "repo": self.repo}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> CodeVersion | None:
        """The inverse of :meth:`to_dict` (None stays None)."""
        if not d:
            return None
        return cls(str(d.get("commit", "")), bool(d.get("dirty", False)), str(d.get("repo", "")))


def _git(args: list[str], cwd: str) -> str | None:
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True,
            timeout=GIT_TIMEOUT_S, env=env, check=False,
        )
    except (OSError, subprocess.SubprocessError) as e:
        log.debug("git %s failed in %s: %s", args[0], cwd, e)
        return None
    return out.stdout if out.returncode == 0 else None


def code_version(cwd: str) -> CodeVersion | None:
    """The git commit and dirty flag of the repository holding ``cwd``; None if there is none."""
    head = _git(["rev-parse", "--show-toplevel", "HEAD"], cwd)
    if not head:
        return None
    lines = head.split("\n")
    if len(lines) < 2 or len(lines[1]) < 40:
        return None  # a repository without commits yet
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    return CodeVersion(commit=lines[1].strip(), dirty=bool(status and status.strip()), repo=lines[0])


@functools.lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    """Versions of Python and of the ML packages that are installed (none is imported)."""
    out = {"python": platform.python_version()}
    for name, dists in _PACKAGES.items():
        for dist in dists:
            try:
                out[name] = importlib.metadata.version(dist)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return out


@functools.lru_cache(maxsize=1)
def user_and_host() -> tuple[str, str]:
    """The login name and host name of this process (``unknown`` when they cannot be read)."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry, no USER variable (containers)
        user = "unknown"
    return user[:200], socket.gethostname()[:255] or "unknown"
