"""Tools some tests need that pip does not install: Debian's Chromium and Node with npm."""

from __future__ import annotations

import os
import shutil

DEFAULT_CHROMIUM = "/usr/bin/chromium"


def chromium_setting() -> str:
    return os.environ.get("AUTH_TEST_CHROMIUM") or DEFAULT_CHROMIUM


def chromium_path() -> str | None:
    """Debian's Chromium ($AUTH_TEST_CHROMIUM, else /usr/bin/chromium), if it is there."""
    path = chromium_setting()
    return path if os.access(path, os.X_OK) else None


def node_missing() -> str | None:
    """Which of node and npm is not on PATH, or None."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    return " and ".join(missing) or None
