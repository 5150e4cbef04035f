"""Errors that are the user's to fix: the CLI prints them as one line, no traceback."""


class UserError(Exception):
    """Base of errors whose message is the whole story (bad path, bad trace, locked store)."""
