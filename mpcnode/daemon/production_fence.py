"""The fence around the ``test_only`` package: production entry points refuse to run
beside it.

Every switch that weakens a protection (bare-digest signing, crash hooks, seeded
randomness, test primes, software authenticators) lives in ``test_only``. No production
module imports it, so a production daemon that finds it loaded was started by something
that is not a production entry point, and stops before serving anything.
"""

from __future__ import annotations

import sys

from mpcnode.core.errors import UsageError

TEST_ONLY_PACKAGE = "test_only"


class FenceError(UsageError):
    """A production entry point found the ``test_only`` package loaded."""


def refuse_test_only(program: str) -> None:
    """Raise ``FenceError`` if any ``test_only`` module is loaded in this process."""
    loaded = sorted(name for name in sys.modules
                    if name == TEST_ONLY_PACKAGE or name.startswith(TEST_ONLY_PACKAGE + "."))
    if loaded:
        raise FenceError(f"{program} refuses to run: the TEST ONLY package "
                         f"{TEST_ONLY_PACKAGE!r} is loaded ({', '.join(loaded)}); a "
                         "production daemon never imports it")
