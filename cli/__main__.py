"""``python -m cli``: the same as the ``bandit-router`` command."""

from .main import main

main()
