"""Argument checks shared by the analysis commands: every bad argument is one line
`error: <flag>=<value>: <what is allowed>` on stderr and exit code 2, before any work and
before anything is written."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NoReturn

from tethercache.rundir import root_problem


class BadArgument(ValueError):
    """An argument the command cannot work with; str() is the one line after 'error: '."""


def fail(message) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


class Parser(argparse.ArgumentParser):
    """argparse with its errors (unknown flag, missing value) as one line, exit 2."""

    def error(self, message: str) -> NoReturn:
        fail(message)


def parse(parser: argparse.ArgumentParser, argv, check) -> argparse.Namespace:
    """Parse argv, then run `check(args)`; a BadArgument it raises is the one line, exit 2."""
    args = parser.parse_args(argv)
    try:
        check(args)
    except BadArgument as e:
        fail(e)
    return args


def count(flag: str, value, lo: int = 1, hi: int | None = None) -> int:
    """An integer in [lo, hi] (resamples, seeds, heights)."""
    allowed = f"must be an integer >= {lo}" if hi is None else f"must be in [{lo}, {hi}]"
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(str(value), 10)
        except ValueError:
            raise BadArgument(f"{flag}={value}: {allowed}") from None
    if value < lo or (hi is not None and value > hi):
        raise BadArgument(f"{flag}={value}: {allowed}")
    return value


def run_paths(paths) -> list[Path]:
    """The run or sweep dirs to read: each must exist and be a directory."""
    out = []
    for p in map(Path, paths):
        problem = root_problem(p)
        if problem:
            raise BadArgument(problem)
        out.append(p)
    return out


def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def output_dir(flag: str, path) -> Path:
    """A folder to write into: a dir or nothing yet, not below a file, writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise BadArgument(f"{flag}={path}: is a file, not a folder")
    _writable_folder(flag, path, path)
    return path


def output_file(flag: str, path) -> Path:
    """A file to write: a file or nothing yet, not below a file, its folder writable."""
    path = Path(path)
    if path.is_dir():
        raise BadArgument(f"{flag}={path}: is a folder, not a file")
    if path.exists() and not os.access(path, os.W_OK):
        raise BadArgument(f"{flag}={path}: is not writable")
    _writable_folder(flag, path, path.parent)
    return path


def _writable_folder(flag: str, path: Path, folder: Path) -> None:
    """`folder` (where `path` goes) exists or can be made, and can be written."""
    base = _nearest_existing(folder)
    if not base.is_dir():
        raise BadArgument(f"{flag}={path}: {base} is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise BadArgument(f"{flag}={path}: {base} is not writable")
