#!/usr/bin/env python3
"""The project's entry points, each installing what it needs first (idempotent).

    python3 run.py demo     train a small MLP on scikit-learn's digits and compare optimizers
    python3 run.py test     lint (ruff), type check (mypy), then the whole test suite: what CI
                            runs; it fails if any of the three fails
    python3 run.py lint     lint and type check only

Each creates ``.venv`` beside this file on first use and installs the project into it with the
matching extra; later runs reinstall only when ``pyproject.toml`` changed. Extra arguments are
passed on to the demo or to pytest (``python3 run.py test -k adam``); a test run given arguments
is a subset run, and skips lint and type check. Set ``GRADXFORM_NO_VENV=1`` to use the current
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
    "lint": ("test", None),
}
# The checks run before the tests; their configuration is in pyproject.toml ([tool.ruff]: every
# Python file but the notebooks; [tool.mypy]: the package).
CHECKS = {
    "ruff": ["-m", "ruff", "check"],
    "mypy": ["-m", "mypy"],
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


def run_checks(python: Path) -> list[str]:
    """Run every check (all of them, so one run shows every problem); the names that failed."""
    failed = []
    for name, command in CHECKS.items():
        print(f"run.py: {name}", flush=True)
        if subprocess.run([str(python), *command], cwd=ROOT).returncode != 0:
            failed.append(name)
    return failed


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__)
        return 2
    name, args = argv[0], argv[1:]
    extra, command = COMMANDS[name]
    python = interpreter()
    ensure_installed(python, extra)
    failed = []
    if name == "lint" or (name == "test" and not args):
        failed = run_checks(python)
    elif name == "test":
        print("run.py: a subset run (arguments given): lint and type check skipped; "
              "python3 run.py lint runs them", flush=True)
    if command is not None:
        if name == "test":
            print("run.py: pytest", flush=True)
        if subprocess.run([str(python), *command, *args], cwd=ROOT).returncode != 0:
            failed.append("pytest" if name == "test" else name)
    if failed:
        print(f"run.py: failed: {', '.join(failed)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
