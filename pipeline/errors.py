"""The two exception types every package raises for input a user can fix."""

from __future__ import annotations

__all__ = ["TridentError", "ContractError"]


class TridentError(Exception):
    """Bad input a user can fix. The message names the thing and the fix; the
    CLI prints it as one line and exits non-zero instead of a traceback."""


class ContractError(TridentError, ValueError):
    """An array handed to a data contract has the wrong shape, dtype or value."""
