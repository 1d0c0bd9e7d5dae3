"""The one error a model command reports instead of a traceback: weights that will not load."""


class ModelLoadError(ValueError):
    """A checkpoint or weights file that is unreadable, of another format, or does not fit its model."""
