"""The one kind of error that means *bad input*, never a bug.

:class:`InputError` (a ``ValueError``) is raised for what a user gave: a value a parameter does
not take, a file that is missing or malformed, data a model cannot read. The command line prints
such an error as one line and exits with status 2; any other exception is a bug, and keeps its
traceback (``lens_focus.commands``).
"""
from __future__ import annotations


class InputError(ValueError):
    """Bad input; the message names the option, the file (and line) or the example."""
