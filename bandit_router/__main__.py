"""``python -m bandit_router``: the same as the ``bandit-router`` command."""

from .cli import main

main()
