"""Paths in a valid configuration that this machine cannot use, one ``key: problem`` each.

Validation (``common.config``) looks at the file only; whether a path can be used
depends on the machine, so ``check-config`` and ``serve`` ask here too. Today that
is ``decision_log.spool_path``, which a Redis store opens (creating its directory)
at start-up: a spool under a regular file, or in a directory that cannot be
created or written, would otherwise stop the router with a traceback; and
``auth.keys_file``, which must be a readable file (its content is checked when
the router reads it, ``router.auth_keys``).
"""

from __future__ import annotations

import os
from pathlib import Path

from .config import Settings

__all__ = ["path_problems", "spool_path_problem"]


def path_problems(settings: Settings, *, create: bool = False) -> list[str]:
    """The paths of ``settings`` this machine cannot use. ``create``: also create what
    is missing and open the files, as the service would (``serve``); without it
    nothing is changed (``check-config``)."""
    problems = []
    if settings.store != "memory://":  # only a Redis store spools
        problem = spool_path_problem(settings.decision_log.spool_path, create=create)
        if problem is not None:
            problems.append(f"decision_log.spool_path: {problem}")
    keys_file = settings.auth.keys_file
    if keys_file is not None and not (Path(keys_file).is_file()
                                      and os.access(keys_file, os.R_OK)):
        problems.append(f"auth.keys_file: {keys_file!r} is not a readable file")
    return problems


def spool_path_problem(path: str, *, create: bool = False) -> str | None:
    """Why the spool at ``path`` (and its ``.lock`` and ``.replaying`` neighbours) could
    not be opened, or None."""
    spool = Path(path)
    for file in (spool, spool.with_name(spool.name + ".lock")):
        if file.exists() and not file.is_file():
            return f"{str(file)!r} is not a regular file"
        if file.exists() and not os.access(file, os.R_OK | os.W_OK):
            return f"{str(file)!r} is not readable and writable"
    directory = spool.parent
    existing = directory
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"cannot create directory {str(directory)!r}: {str(existing)!r} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        verb = "write in" if existing == directory else "create"
        return f"cannot {verb} directory {str(directory)!r}: {str(existing)!r} is not writable"
    if create:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            with open(spool, "ab"):
                pass
        except OSError as exc:
            return f"cannot open {str(spool)!r}: {exc.strerror or exc}"
    return None
