"""Vigil's common code: config, message contracts, Redis names and helpers, metrics, logs."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vigil")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+local"
