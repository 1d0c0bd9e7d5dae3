"""The operator console (``vigil web``): live camera grid, alert feed and review, a REST API."""
