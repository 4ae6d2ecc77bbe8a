"""TEST ONLY: SoftHSM2 tokens in a temporary directory, for the tests of the pkcs11 seal.

Each ``SoftHsm`` writes its own softhsm2.conf whose token directory lies under the test's
tmp directory, and hands out the environment (``SOFTHSM2_CONF``) that makes the library
use it: a test never touches the system's token directory. SoftHSM2 reads its config
once per process (at C_Initialize) and sees only the tokens present then, so a test
creates its tokens first and runs whatever loads the library in a child process, or
loads it in the test process only through ``session_softhsm``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

MODULE_CANDIDATES = (
    Path("/usr/lib/softhsm/libsofthsm2.so"),
    Path("/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"),
    Path("/usr/local/lib/softhsm/libsofthsm2.so"),
)
SO_PIN = "so-pin-0000"  # TEST ONLY
USER_PIN = "user-pin-1234"  # TEST ONLY


def softhsm_module() -> Path:
    """The installed SoftHSM2 PKCS#11 library (testing/setup.sh installs softhsm2)."""
    for candidate in MODULE_CANDIDATES:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("libsofthsm2.so not found: run testing/setup.sh (softhsm2)")


@dataclass(frozen=True)
class SoftHsm:
    """A SoftHSM2 configuration private to one test."""

    root: Path

    @classmethod
    def create(cls, root: Path) -> SoftHsm:
        hsm = cls(root)
        hsm.tokens.mkdir(parents=True, mode=0o700)
        hsm.conf.write_text(f"directories.tokendir = {hsm.tokens}\n"
                            "objectstore.backend = file\nlog.level = ERROR\n")
        return hsm

    @property
    def conf(self) -> Path:
        return self.root / "softhsm2.conf"

    @property
    def tokens(self) -> Path:
        return self.root / "tokens"

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "SOFTHSM2_CONF": str(self.conf), **extra}

    def init_token(self, label: str, pin: str = USER_PIN) -> None:
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label,
                        "--pin", pin, "--so-pin", SO_PIN],
                       env=self.env(), check=True, capture_output=True)

    def token_dir(self, label: str) -> Path:
        """The directory SoftHSM2 keeps token ``label`` in."""
        for d in self.tokens.iterdir():
            conf = d / "token.object"
            if conf.is_file() and label.ljust(32).encode() in conf.read_bytes():
                return d
        raise LookupError(f"no token {label!r} under {self.tokens}")

    def remove_token(self, label: str, aside: Path) -> None:
        """Take token ``label`` out (as if the HSM were unplugged), keeping it at ``aside``."""
        shutil.move(str(self.token_dir(label)), str(aside))

    def put_back(self, aside: Path) -> None:
        shutil.move(str(aside), str(self.tokens / aside.name))
