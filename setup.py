"""Build hook: generate the gRPC Python modules from proto/ with grpcio-tools.

The generated code is not committed; every build (``pip install .`` and editable
``pip install -e .``) regenerates it into mpcnode/rpc/ and oms_core/rpc/ from the .proto
files. Importing the packages never runs protoc.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def generate_grpc() -> None:
    import importlib.util

    script = ROOT / "proto" / "generate_grpc.py"
    spec = importlib.util.spec_from_file_location("generate_grpc", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.generate(ROOT)


class BuildPyWithProto(build_py):
    def run(self) -> None:
        generate_grpc()
        super().run()


setup(cmdclass={"build_py": BuildPyWithProto})
