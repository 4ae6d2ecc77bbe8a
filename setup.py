"""Build hook: generate the gRPC Python modules from proto/ with grpcio-tools.

The generated code is not committed; every build (``pip install .`` and editable
``pip install -e .``) regenerates it into mpcnode/rpc/ from the .proto files.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def generate_grpc() -> None:
    import sys

    sys.path.insert(0, str(ROOT))
    from mpcnode.rpc.generate import generate

    generate(ROOT)


class BuildPyWithProto(build_py):
    def run(self) -> None:
        generate_grpc()
        super().run()


setup(cmdclass={"build_py": BuildPyWithProto})
