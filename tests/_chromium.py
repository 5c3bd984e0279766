"""Render an HTML page in headless Chromium and return the DOM after its scripts ran."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"


def chromium() -> str:
    """The browser binary; skip the test without one (fail in CI, which must run it)."""
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing; CI must run the browser test")
    pytest.skip(f"{CHROMIUM} is not installed")


def rendered_dom(page: str, tmp_path: Path, name: str = "report") -> str:
    """Write ``page`` to ``tmp_path/name.html``, open it headless, return the rendered DOM."""
    report = tmp_path / f"{name}.html"
    report.write_text(page)
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / ('profile-' + name)}",
           "--window-size=1280,2000", "--virtual-time-budget=10000", "--dump-dom", report.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout
