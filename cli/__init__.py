"""The ``bandit-router`` command line and its demos: the composition root.

It holds no logic of its own: ``main`` is the typer app; ``serve``, ``ingest`` and
``embedded`` build the router and the learning loop from ``router``,
``reward_ingest`` and ``common``; ``live_demo`` runs the whole loop on this machine
(moto, the simulator, the router) and ``offline_demo`` runs the in-process
simulation of every policy side by side; the ``*_view`` modules draw them.
"""
