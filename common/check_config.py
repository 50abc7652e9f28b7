"""``bandit-router check-config FILE``: validate a config, naming the path of every bad key."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from .config import ConfigError, load_settings
from .config_paths import path_problems


def check_config(path: str | Path, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """0 and ``OK: N experiments`` on stdout, or 2 and one problem per line on stderr
    (including paths this machine cannot use; nothing is created)."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=err)
        return 2
    problems = path_problems(settings)
    if problems:
        for problem in problems:
            print(problem, file=err)
        return 2
    count = len(settings.experiments)
    print(f"OK: {count} experiment{'s' if count != 1 else ''}", file=out)
    return 0
