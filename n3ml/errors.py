"""User-facing errors. The CLI prints these as one message, without a traceback."""


class N3mlError(Exception):
    """An error the user can act on: bad input file, unsupported construct, missing tool."""


class UnsupportedError(N3mlError):
    """A construct a frontend or target cannot express; the message names it and lists what is supported."""
