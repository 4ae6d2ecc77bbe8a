"""gRPC wire types of the OMS service, generated from proto/ at build time."""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent
_SOURCE = _HERE.parents[1] / "proto" / "oms_core" / "rpc" / "oms.proto"

if not (_HERE / "oms_pb2.py").exists() or (
    _SOURCE.exists() and _SOURCE.stat().st_mtime > (_HERE / "oms_pb2.py").stat().st_mtime
):
    from mpcnode.rpc.generate import generate

    generate(_HERE.parents[1])
