"""gRPC wire types, generated from proto/ at build time (see generate.py)."""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent
_SOURCE = _HERE.parents[1] / "proto" / "mpcnode" / "rpc" / "node.proto"

if not (_HERE / "node_pb2.py").exists() or (
    _SOURCE.exists() and _SOURCE.stat().st_mtime > (_HERE / "node_pb2.py").stat().st_mtime
):
    from mpcnode.rpc.generate import generate

    generate(_HERE.parents[1])
