"""Errors a user can cause; the CLI prints them as one sentence, without a traceback."""


class TinytrainError(Exception):
    """Base class for errors caused by input, files or devices rather than by bugs."""
