"""Vigil's composition root: the ``vigil`` command and the demo, which wire the services together."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vigil")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+local"
