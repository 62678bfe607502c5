"""Mistakes a user can cause, and how they end: one line on stderr, exit code 2, no traceback."""

from __future__ import annotations

import sys
from typing import NoReturn

USAGE_EXIT = 2


class UserError(Exception):
    """A mistake the user can fix (bad override, missing or corrupt file). The message names the
    problem and the fix in one line."""


def fail(message: str) -> NoReturn:
    """Print `mnist: error: MESSAGE` on stderr and exit with code 2."""
    print(f"mnist: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(USAGE_EXIT)
