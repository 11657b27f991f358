#!/usr/bin/env python3
"""The project's two entry points, each installing what it needs first (idempotent).

    python3 run.py demo     train a small MLP on scikit-learn's digits and compare optimizers
    python3 run.py test     run the whole test suite (what CI runs)

Both create ``.venv`` beside this file on first use and install the project into it with the
matching extra; later runs reinstall only when ``pyproject.toml`` changed. Extra arguments are
passed on (``python3 run.py test -k adam``). Set ``GRADXFORM_NO_VENV=1`` to use the current
interpreter instead of ``.venv``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
COMMANDS = {
    "demo": ("demo", ["examples/digits.py"]),
    "test": ("test", ["-m", "pytest", "-n", "2", "-q"]),
}


def interpreter() -> Path:
    if os.environ.get("GRADXFORM_NO_VENV"):
        return Path(sys.executable)
    python = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if not python.exists():
        print(f"run.py: creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    return python


def ensure_installed(python: Path, extra: str) -> None:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    stamp = ROOT / f".run-stamp-{extra}-{digest}-{python.parent.parent.name}"
    if stamp.exists():
        return
    print(f"run.py: installing gradxform[{extra}] (first run only)", flush=True)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["-e", f".[{extra}]"], cwd=ROOT, check=True)
    for old in ROOT.glob(f".run-stamp-{extra}-*"):
        old.unlink()
    stamp.touch()


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__)
        return 2
    extra, command = COMMANDS[argv[0]]
    python = interpreter()
    ensure_installed(python, extra)
    return subprocess.run([str(python), *command, *argv[1:]], cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
