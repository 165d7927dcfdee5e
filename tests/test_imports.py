"""Every module imports on its own: no import cycle is hidden by the app's import order."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import hotline

SCRIPT = """
import importlib, sys
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "hotline" or m.startswith("hotline.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed.append(f"{name}: {exc!r}")
print("\\n".join(failed))
"""


def test_every_module_imports_alone() -> None:
    names = [
        m.name
        for m in pkgutil.walk_packages(hotline.__path__, "hotline.")
        if m.name != "hotline.__main__"
    ]
    assert len(names) > 40
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, *names], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
