"""One home per name (STYLE.md): each package has one root exception that all of its
exception classes derive from, no two exception classes share a name, and no two modules
share a file name, so a traceback, an ``except`` clause or an import names one thing."""

from __future__ import annotations

import collections
import importlib
import inspect
import pkgutil
from pathlib import Path

from coordinator.coordinator_errors import CoordinatorError
from ethereum.ethereum_errors import EthereumError
from mpcnode.core.errors import MpcnodeError
from oms_core.oms_core_errors import OmsCoreError
from zero_trust.zero_trust_errors import ZeroTrustError

ROOT = Path(__file__).resolve().parent.parent
ROOTS: dict[str, type[Exception]] = {
    "mpcnode": MpcnodeError,
    "coordinator": CoordinatorError,
    "oms_core": OmsCoreError,
    "zero_trust": ZeroTrustError,
    "ethereum": EthereumError,
}


def _exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for package in ROOTS:
        path = importlib.import_module(package).__path__
        for info in pkgutil.walk_packages(path, package + "."):
            if info.name.endswith("__main__"):
                continue  # running it is its only purpose
            module = importlib.import_module(info.name)
            for obj in vars(module).values():
                if (inspect.isclass(obj) and issubclass(obj, BaseException)
                        and obj.__module__ == module.__name__):
                    found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return found


def test_every_exception_class_derives_from_its_package_root() -> None:
    classes = _exception_classes()
    stray = [name for name, cls in classes.items()
             if not issubclass(cls, ROOTS[name.split(".")[0]])]
    assert not stray, f"not derived from their package's root exception: {stray}"
    assert len(classes) > 100  # the walk found the packages' modules


def test_no_two_exception_classes_share_a_name() -> None:
    by_name = collections.defaultdict(list)
    for name in _exception_classes():
        by_name[name.rsplit(".", 1)[1]].append(name)
    assert {k: v for k, v in by_name.items() if len(v) > 1} == {}


def test_no_two_modules_share_a_file_name() -> None:
    by_name = collections.defaultdict(list)
    for package in ROOTS:
        for path in (ROOT / package).rglob("*.py"):
            if path.stem not in ("__init__", "__main__"):
                by_name[path.name].append(str(path.relative_to(ROOT)))
    assert {k: v for k, v in by_name.items() if len(v) > 1} == {}
