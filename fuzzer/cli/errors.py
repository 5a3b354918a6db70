"""Errors the CLI reports as one line with exit 2."""


class UsageError(Exception):
    """A user mistake: bad flag, unknown name, unwritable path, corrupt input."""
