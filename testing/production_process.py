"""TEST ONLY: run a production entry point in the test process as if it were production.

The test process has ``test_only`` loaded (the tests use it), and the production entry
points refuse to run beside it. ``without_test_only`` takes its modules out of
``sys.modules`` for one test, so that test can reach what the entry point does after
the fence; pytest's monkeypatch puts them back.
"""

from __future__ import annotations

import sys

import pytest

from mpcnode.daemon.production_fence import TEST_ONLY_PACKAGE


def without_test_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide every loaded ``test_only`` module until the end of the test."""
    for name in [n for n in sys.modules
                 if n == TEST_ONLY_PACKAGE or n.startswith(TEST_ONLY_PACKAGE + ".")]:
        monkeypatch.delitem(sys.modules, name)
