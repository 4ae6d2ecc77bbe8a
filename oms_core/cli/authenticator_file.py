"""DEMO AND TEST ONLY: a software authenticator's state file, as the ``oms`` CLI uses it.

The file holds a P-256 private key in clear PEM (``SoftwareAuthenticator``): whoever reads
it can approve as its user, so it must be private to its owner (mode 0600) and is written
back after every assertion, atomically, because the signature counter moved on and a
counter that goes back is refused by the OMS and by every signer node. Real approvers use
a hardware authenticator through a browser.
"""

from __future__ import annotations

import os
from pathlib import Path

from mpcnode.state.atomic_file import write_private
from test_only.soft_authenticator import SoftwareAuthenticator
from zero_trust.approvals.approval_errors import AuthenticatorStateError


def load_authenticator(path: Path) -> SoftwareAuthenticator:
    """The authenticator in ``path``; refused if group or others may read the file."""
    try:
        mode = os.stat(path).st_mode & 0o777
        data = path.read_bytes()
    except OSError as exc:
        raise AuthenticatorStateError(f"cannot read the authenticator file {path}: "
                                      f"{exc.strerror}") from None
    if mode & 0o077:
        raise AuthenticatorStateError(f"{path} holds a private key and may be read by other "
                                      f"users (mode {mode:04o}); chmod 600 it")
    try:
        return SoftwareAuthenticator.from_state_json(data)
    except AuthenticatorStateError as exc:
        raise AuthenticatorStateError(f"{path}: {exc}") from None


def save_authenticator(path: Path, authenticator: SoftwareAuthenticator) -> None:
    """Write the state (0600, all or nothing), e.g. after its counter moved on."""
    write_private(path, authenticator.to_state_json())
