"""How a verb fails: each error is one line on stderr and an exit code."""


class Failed(Exception):
    """The operation failed: exit code 1."""


class UsageError(Exception):
    """Bad command-line input: exit code 2."""
