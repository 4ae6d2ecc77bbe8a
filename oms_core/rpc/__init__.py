"""gRPC wire types of the OMS service, generated from proto/ at build time (see
``mpcnode.rpc``: importing never writes files)."""

from __future__ import annotations

from mpcnode.rpc import require_generated

require_generated(__name__, "oms_pb2")
