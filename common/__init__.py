"""Plumbing shared by the router and the reward ingester, so neither imports the other.

``config`` (the pydantic configuration and ``check-config``), ``storage`` (the
Redis names and stream idioms of the router ↔ learner contract, the in-memory
stream, the group commit), ``api_errors`` (the ``{error, message, problems}``
answer), ``json_input`` (JSON input, deep nesting refused), ``tasks``
(bounded task shutdown) and ``learner_stats`` (the learner's figures as stored).
"""
