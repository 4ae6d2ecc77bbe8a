"""Production entry points refuse to run with the ``test_only`` package loaded, and no
production module loads it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import test_only
from mpcnode.daemon.production_fence import FenceError, refuse_test_only
from testing.production_process import without_test_only

ROOT = Path(__file__).resolve().parents[3]
PRODUCTION = ("mpcnode", "coordinator", "oms_core", "zero_trust", "ethereum")
# DEMO ONLY modules that hand out software authenticators: imported only by `oms demo`,
# `oms init --demo-person` and the client commands, never by a daemon.
DEMO_IMPORTERS = {"oms_core/demo/demo_people.py", "oms_core/cli/authenticator_file.py"}


def test_refused_when_loaded() -> None:
    assert test_only.__name__ in sys.modules
    with pytest.raises(FenceError, match=r"mpcnode serve refuses to run: the TEST ONLY"):
        refuse_test_only("mpcnode serve")


def test_accepted_when_not_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    without_test_only(monkeypatch)
    refuse_test_only("mpcnode serve")


def _imports_test_only(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        if any(n == "test_only" or n.startswith("test_only.") for n in names):
            return True
    return False


def test_no_production_module_imports_test_only() -> None:
    importers = {p.relative_to(ROOT).as_posix()
                 for package in PRODUCTION for p in (ROOT / package).rglob("*.py")
                 if _imports_test_only(p)}
    assert importers == DEMO_IMPORTERS


def test_the_daemons_do_not_load_test_only() -> None:
    """What ``mpcnode serve`` and ``oms serve`` import, in a fresh interpreter."""
    code = ("import sys\n"
            "import mpcnode.daemon.node_cli, mpcnode.daemon.node_server\n"
            "import oms_core.cli.oms_cli, oms_core.daemon.runtime\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'test_only'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT, timeout=120).stdout
    assert out.strip() == "[]"
