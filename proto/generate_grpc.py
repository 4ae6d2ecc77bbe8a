"""Generate the gRPC modules from proto/: a build step, never run on import.

The package build runs it (setup.py, for ``pip install .`` and ``pip install -e .``);
after editing a .proto file in a checkout, run ``python3 proto/generate_grpc.py``.
Output: mpcnode/rpc/node_pb2.py, node_pb2.pyi, node_pb2_grpc.py and oms_core/rpc/oms_pb2*.py
(not committed). It lives outside the installed packages, so importing them never writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROTOS = ("mpcnode/rpc/node.proto", "oms_core/rpc/oms.proto")


def generate(root: Path) -> None:
    from grpc_tools import protoc  # build-time dependency (grpcio-tools)

    include = str(root / "proto")
    well_known = str(Path(protoc.__file__).parent / "_proto")
    for rel in PROTOS:
        args = [
            "grpc_tools.protoc",
            f"-I{include}",
            f"-I{well_known}",
            f"--python_out={root}",
            f"--pyi_out={root}",
            f"--grpc_python_out={root}",
            str(root / "proto" / rel),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed for {rel}")


def main() -> int:
    generate(Path(__file__).resolve().parents[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
