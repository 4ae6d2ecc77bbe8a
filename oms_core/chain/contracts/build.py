"""Compile the contracts (test chains' and the audit anchor) with a pinned solc; write artifacts.

Run ``python3 -m oms_core.chain.contracts.build`` after editing a ``.sol`` file (needs node and
npm; npx fetches the pinned ``solc`` package, the JavaScript build of the official compiler).
The artifacts are committed so that tests, the demo and CI need no compiler; each one records
the sha256 of the source it came from, and a test fails when a source changed without a
rebuild. ``--check`` recompiles and fails if the committed artifacts differ.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from oms_core.oms_core_errors import OmsCoreError

SOLC_PACKAGE = "solc@0.8.26"  # npm package; solcjs is its command
EVM_VERSION = "cancun"  # supported by eth-tester (py-evm Prague VM) and anvil alike
OPTIMIZER_RUNS = 200
# each in <name>.sol, contract of the same name
CONTRACTS = ("Token", "ConstantProductPool", "AuditAnchor")

CONTRACTS_DIR = Path(__file__).resolve().parent
ARTIFACTS_DIR = CONTRACTS_DIR / "artifacts"


class BuildError(OmsCoreError):
    """The compiler could not be run or rejected the sources."""


def source_sha256(source: bytes) -> str:
    return hashlib.sha256(source).hexdigest()


def standard_json_input(sources: Mapping[str, str]) -> dict[str, Any]:
    """solc Standard JSON input: file name → source text, pinned optimizer and EVM version."""
    return {
        "language": "Solidity",
        "sources": {file: {"content": text} for file, text in sorted(sources.items())},
        "settings": {
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "evmVersion": EVM_VERSION,
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object",
                                            "evm.deployedBytecode.object"]}},
        },
    }


def artifacts_from_output(output: Mapping[str, Any], sources: Mapping[str, bytes],
                          compiler: str) -> dict[str, dict[str, Any]]:
    """One artifact per contract in CONTRACTS from solc's Standard JSON output."""
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise BuildError("solc rejected the sources:\n"
                         + "\n".join(str(e.get("formattedMessage", e)) for e in errors))
    artifacts: dict[str, dict[str, Any]] = {}
    for name in CONTRACTS:
        file = f"{name}.sol"
        try:
            compiled = output["contracts"][file][name]
        except KeyError as exc:
            raise BuildError(f"solc output has no contract {name} in {file}") from exc
        artifacts[name] = {
            "contract": name,
            "source_file": file,
            "source_sha256": source_sha256(sources[file]),
            "compiler": compiler,
            "settings": standard_json_input({})["settings"],
            "abi": compiled["abi"],
            "bytecode": "0x" + compiled["evm"]["bytecode"]["object"],
            "deployed_bytecode": "0x" + compiled["evm"]["deployedBytecode"]["object"],
        }
    return artifacts


def render(artifact: Mapping[str, Any]) -> str:
    """Stable text (sorted keys, trailing newline), so a rebuild of the same source is a no-op
    in git."""
    return json.dumps(artifact, indent=1, sort_keys=True) + "\n"


def _solcjs(args: Sequence[str], stdin: str | None = None) -> str:
    command = ["npx", "--yes", "--package", SOLC_PACKAGE, "solcjs", *args]
    try:
        done = subprocess.run(command, input=stdin, capture_output=True, text=True,
                              check=False, timeout=600)
    except FileNotFoundError as exc:
        raise BuildError("npx not found: install node and npm to compile the contracts") from exc
    if done.returncode != 0:
        raise BuildError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def compile_sources(sources: Mapping[str, bytes]) -> dict[str, dict[str, Any]]:
    compiler = _solcjs(["--version"]).strip().splitlines()[-1]
    text = {file: data.decode("utf-8") for file, data in sources.items()}
    raw = _solcjs(["--standard-json"], json.dumps(standard_json_input(text)))
    try:
        output = json.loads(raw[raw.index("{"):])  # npm may print notices first
    except ValueError as exc:
        raise BuildError(f"solcjs printed no JSON: {raw[:500]!r}") from exc
    for warning in output.get("errors", []):
        if warning.get("severity") != "error":
            print(warning.get("formattedMessage", warning), file=sys.stderr)
    return artifacts_from_output(output, sources, compiler)


def read_sources() -> dict[str, bytes]:
    return {f"{name}.sol": (CONTRACTS_DIR / f"{name}.sol").read_bytes() for name in CONTRACTS}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true",
                        help="recompile and fail if the committed artifacts differ")
    args = parser.parse_args(argv)
    try:
        artifacts = compile_sources(read_sources())
    except BuildError as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return 1
    stale = []
    for name, artifact in artifacts.items():
        path = ARTIFACTS_DIR / f"{name}.json"
        text = render(artifact)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path.name)
            continue
        ARTIFACTS_DIR.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(CONTRACTS_DIR)} ({artifact['compiler']})")
    if stale:
        print(f"artifacts out of date: {', '.join(stale)}; run python3 -m "
              "oms_core.chain.contracts.build", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
