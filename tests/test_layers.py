"""The layer rule of docs/architecture.md, enforced with the suite.

Top to bottom: ``oms_core`` → ``coordinator`` → the signer daemon (``mpcnode.daemon``) →
pure cores. Nothing imports upward; the pure cores (``mpcnode.core``, ``mpcnode.crypto``,
``mpcnode.protocol``, ``ethereum``, ``zero_trust``) import no I/O, clock, logging, OS
randomness or gRPC. The contracts live in pyproject.toml (import-linter); these tests run
them, show that they catch an upward import, and check what a real process loads.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("mpcnode", "coordinator", "oms_core", "zero_trust", "ethereum")


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    code = "from importlinter.cli import lint_imports_command; lint_imports_command()"
    return subprocess.run([sys.executable, "-c", code, "--no-cache"],
                          cwd=cwd, env=env, capture_output=True, text=True, check=False)


def _copy_tree(dest: Path) -> None:
    for name in PACKAGES:
        shutil.copytree(ROOT / name, dest / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")


def test_layer_contracts_hold() -> None:
    r = _lint_imports(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 kept, 0 broken" in r.stdout


def test_an_upward_import_breaks_the_layer_contract(tmp_path: Path) -> None:
    _copy_tree(tmp_path)
    group = tmp_path / "mpcnode" / "crypto" / "group.py"
    group.write_text(group.read_text() + "\nfrom oms_core.app import oms_db  # noqa\n")
    r = _lint_imports(tmp_path)
    assert r.returncode != 0
    assert "mpcnode.crypto is not allowed to import oms_core" in r.stdout
    assert "mpcnode.crypto.group -> oms_core.app.oms_db" in r.stdout


def test_io_in_a_pure_core_breaks_the_purity_contract(tmp_path: Path) -> None:
    _copy_tree(tmp_path)
    evaluate = tmp_path / "zero_trust" / "policy" / "evaluate.py"
    evaluate.write_text(evaluate.read_text() + "\nimport time  # noqa\n")
    r = _lint_imports(tmp_path)
    assert r.returncode != 0
    assert "zero_trust is not allowed to import time" in r.stdout


def _loaded_modules(*modules: str) -> list[str]:
    code = ("import json, sys\n" + "".join(f"import {m}\n" for m in modules)
            + "print(json.dumps(sorted(sys.modules)))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True, cwd=ROOT)
    loaded: list[str] = json.loads(r.stdout)
    return loaded


def test_the_signer_daemon_loads_no_oms_or_coordinator_module() -> None:
    loaded = _loaded_modules("mpcnode.daemon.node_cli", "mpcnode.daemon.node_server",
                             "mpcnode.daemon.node")
    assert "mpcnode.daemon.node_server" in loaded
    assert "zero_trust.authorization" in loaded  # the node does re-check the policy
    upward = [m for m in loaded if m.split(".")[0] in ("oms_core", "coordinator")]
    assert upward == []


def test_the_pure_cores_load_nothing_above_them() -> None:
    loaded = _loaded_modules("zero_trust.authorization", "ethereum.transactions",
                             "mpcnode.protocol.presign", "mpcnode.crypto.zk.enc")
    above = [m for m in loaded
             if m.split(".")[0] in ("oms_core", "coordinator", "grpc")
             or m.startswith(("mpcnode.daemon", "mpcnode.state", "mpcnode.transport",
                              "mpcnode.ceremony", "mpcnode.sim"))]
    assert above == []


def _snapshot() -> dict[str, int]:
    files: dict[str, int] = {}
    for name in PACKAGES:
        for p in (ROOT / name).rglob("*"):
            if p.is_file() and "__pycache__" not in p.parts:
                files[str(p.relative_to(ROOT))] = p.stat().st_mtime_ns
    return files


def test_importing_every_module_writes_no_file() -> None:
    before = _snapshot()
    code = ("import importlib, pkgutil\n"
            f"for name in {PACKAGES!r}:\n"
            "    pkg = importlib.import_module(name)\n"
            "    for m in pkgutil.walk_packages(pkg.__path__, name + '.'):\n"
            "        if not m.name.endswith('__main__'):\n"
            "            importlib.import_module(m.name)\n")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env)
    assert _snapshot() == before
