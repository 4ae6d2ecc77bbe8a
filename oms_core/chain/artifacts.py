"""The compiled contracts (``contracts/artifacts/*.json``, written by contracts/build.py).

Deploying code that was not built from the committed source would make every test about the
token and the pool a test of something else, so ``load`` can refuse an artifact whose recorded
source hash no longer matches its ``.sol`` file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oms_core.oms_core_errors import OmsCoreError

CONTRACTS_DIR = Path(__file__).resolve().parent / "contracts"
ARTIFACTS_DIR = CONTRACTS_DIR / "artifacts"

TOKEN = "Token"
POOL = "ConstantProductPool"
AUDIT_ANCHOR = "AuditAnchor"


class ArtifactError(OmsCoreError):
    """A contract artifact is missing, malformed or stale."""


@dataclass(frozen=True)
class ContractArtifact:
    name: str
    abi: tuple[dict[str, Any], ...]
    bytecode: bytes  # creation code, constructor arguments not included
    deployed_bytecode: bytes  # what eth_getCode returns once deployed
    compiler: str  # e.g. "0.8.26+commit.8a97fa7a.Emscripten.clang"
    source_file: str  # file name in CONTRACTS_DIR
    source_sha256: str  # hex sha256 of the source the bytecode came from

    @property
    def source_path(self) -> Path:
        return CONTRACTS_DIR / self.source_file

    def source_is_current(self) -> bool:
        """True when the ``.sol`` file is byte for byte the one that was compiled."""
        try:
            source = self.source_path.read_bytes()
        except OSError as exc:
            raise ArtifactError(f"source of {self.name} missing: {self.source_path}") from exc
        return hashlib.sha256(source).hexdigest() == self.source_sha256


def _hex(value: object, field: str, name: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ArtifactError(f"artifact {name}: {field} is not 0x-prefixed hex")
    try:
        return bytes.fromhex(value[2:])
    except ValueError as exc:
        raise ArtifactError(f"artifact {name}: {field} is not hex") from exc


def parse(name: str, text: str) -> ContractArtifact:
    try:
        data = json.loads(text)
        abi = data["abi"]
        fields = {k: data[k] for k in ("compiler", "source_file", "source_sha256")}
    except (ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"artifact {name} is malformed: {exc}") from exc
    if not isinstance(abi, list) or not all(isinstance(entry, dict) for entry in abi):
        raise ArtifactError(f"artifact {name}: abi is not a list of objects")
    if not all(isinstance(v, str) for v in fields.values()):
        raise ArtifactError(f"artifact {name}: compiler and source fields must be strings")
    return ContractArtifact(name, tuple(abi), _hex(data.get("bytecode"), "bytecode", name),
                            _hex(data.get("deployed_bytecode"), "deployed_bytecode", name),
                            fields["compiler"], fields["source_file"], fields["source_sha256"])


def load(name: str, *, require_current_source: bool = True) -> ContractArtifact:
    """The artifact of contract ``name``; by default refuses one built from another source."""
    path = ARTIFACTS_DIR / f"{name}.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ArtifactError(f"no artifact for contract {name} at {path}; run "
                            "python3 -m oms_core.chain.contracts.build") from exc
    artifact = parse(name, text)
    if require_current_source and not artifact.source_is_current():
        raise ArtifactError(f"artifact {name} was built from another version of "
                            f"{artifact.source_file}; run python3 -m "
                            "oms_core.chain.contracts.build and commit the artifacts")
    return artifact
