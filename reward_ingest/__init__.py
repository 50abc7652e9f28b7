"""The learning loop: reward webhook, joiner, learner, snapshot publisher, weight pusher, archiver."""
