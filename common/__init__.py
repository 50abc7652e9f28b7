"""Plumbing shared by the router and the reward ingester: the configuration."""
