"""``oms serve``: run the OMS daemon of an ``oms.toml`` until SIGTERM (``daemon.runtime``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mpcnode.daemon.production_fence import refuse_test_only
from oms_core.app.oms_config import load_settings
from oms_core.cli.exit_status import EXIT_REFUSED, fail, one_line


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="run the OMS gRPC service")
    serve.add_argument("--config", type=Path, required=True, help="oms.toml")
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    refuse_test_only("oms serve")  # the demo may use test_only; the daemon never
    # Imported here: the daemon (gRPC, the coordinator) loads only for the command that runs it.
    from mpcnode.transport.net_address import ListenError
    from oms_core.daemon.runtime import StartupError, serve

    try:
        return serve(load_settings(args.config))
    except (StartupError, ListenError) as exc:
        return fail(one_line(exc), EXIT_REFUSED)
