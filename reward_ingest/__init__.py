"""The learning loop: reward webhook, joiner, learner, publisher, weight pusher, archiver."""
