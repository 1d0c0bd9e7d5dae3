"""Vigil's common ground, which every service stands on: config, message contracts, Redis names and
helpers, leases, the service loop, metrics and logs. It imports no service."""
