"""The root of every exception class of ``coordinator``, in a module of its own so that the
transcript reader and the ceremony CLI need not load the session driver to use it."""

from __future__ import annotations


class CoordinatorError(Exception):
    """A request the coordinator cannot carry out (no healthy signer set, bad input…), or a
    transcript it cannot accept; the root of every exception class of ``coordinator``."""
