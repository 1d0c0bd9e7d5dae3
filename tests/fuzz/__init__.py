"""Fuzz tests (hypothesis): every input a service can be handed from outside, Redis entries, config
files, environment variables, HTTP requests, ends in a typed error or a proper answer, never another
exception. Seeded (``derandomize``), so a run is the same run everywhere."""

from hypothesis import HealthCheck, settings

FUZZ = settings(
    max_examples=1000,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
