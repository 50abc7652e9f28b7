"""Every error the bandit core raises.

    BanditError
    ├── SpecError          a policy spec is invalid; ``str()`` starts with the key path
    ├── ArmError           an unknown, duplicate or last remaining arm
    ├── ContextError       a context that cannot become features
    ├── FeedbackError      a reward or probability a policy cannot learn from
    ├── SnapshotError      bytes that are not a snapshot this version can load
    └── EvaluationError    logs, a target or options off-policy evaluation cannot use
"""

from __future__ import annotations

from collections.abc import Sequence


class BanditError(Exception):
    """Base of every error raised by ``bandit``."""


class SpecError(BanditError, ValueError):
    """A policy spec is invalid; the message names the key path, e.g. ``policy.epsilon``.

    ``path`` and ``problem`` are the first problem found; ``problems`` holds every
    ``(path, problem)`` pair, that one first. The message is ``path: problem``, with
    any further problems after it, each as ``; path: problem``.
    """

    def __init__(self, path: str, problem: str, *,
                 more: Sequence[tuple[str, str]] = ()) -> None:
        self.problems: list[tuple[str, str]] = [(path, problem), *more]
        super().__init__("; ".join(f"{where}: {what}" for where, what in self.problems))
        self.path = path
        self.problem = problem


class ArmError(BanditError, KeyError):
    """An arm that is unknown, already present, or the last one left."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ContextError(BanditError, ValueError):
    """A context value the feature encoder cannot represent."""


class FeedbackError(BanditError, ValueError):
    """A feedback record with a reward or probability outside what the policy accepts."""


class SnapshotError(BanditError, ValueError):
    """Bytes that are not a policy snapshot this version understands."""


class EvaluationError(BanditError, ValueError):
    """Logs, a target or options that off-policy evaluation cannot use.

    The message names what is wrong, e.g. ``logs[3].probability must be in (0, 1]``.
    """
