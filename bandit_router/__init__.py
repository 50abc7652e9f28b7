"""The ``bandit-router`` command line: the composition root that wires the packages together.

It holds no logic of its own: each command builds its parts from ``bandit``
(and, in later stages, ``router`` and ``reward_ingest``) and runs them.
"""
