"""Headless Chromium (Debian's, installed by `make install-dev`) for the tests that look at pages."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

# Flags that work on this project's machines (no sandbox as root, no GPU, nothing phoned home).
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars")
NO_INTERNET = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"  # only loopback resolves


def chromium() -> str:
    """The Chromium binary. In CI a missing one fails the test; locally it skips."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    message = "headless Chromium is not installed; `make install-dev` installs Debian's chromium package."
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _run(url: str, *extra: str, budget_ms: int, timeout: int) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [chromium(), *FLAGS, NO_INTERNET, f"--user-data-dir={profile}",
               f"--virtual-time-budget={budget_ms}", *extra, url]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"chromium failed on {url}:\n{done.stderr[-3000:]}"
    return done


def dump_dom(url: str, *, budget_ms: int = 15000, timeout: int = 120) -> str:
    """The page's DOM after its scripts ran (virtual time lets timers and fetches settle)."""
    return _run(url, "--dump-dom", budget_ms=budget_ms, timeout=timeout).stdout


def screenshot(url: str, path: Path, *, size: str = "1400,1000", budget_ms: int = 15000, timeout: int = 120) -> Path:
    """A PNG of the page at the given window size."""
    _run(url, f"--screenshot={path}", f"--window-size={size}", budget_ms=budget_ms, timeout=timeout)
    assert path.is_file() and path.stat().st_size > 0, f"chromium wrote no screenshot of {url}"
    return path
