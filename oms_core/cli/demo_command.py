"""``oms demo``: the whole system on embedded defaults, in this process (``demo.oms_demo``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser("demo", help="the whole system on embedded defaults: a 3-of-5 "
                               "cluster, the ceremony and the article's DeFi scenario")
    demo.add_argument("--json", action="store_true", help="print one JSON object last")
    demo.add_argument("--dir", type=Path, default=None,
                      help="keep the cluster and OMS files here (default: a temporary dir)")
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    # Imported here: the demo (the simulator, the embedded chain) loads only when it runs.
    from oms_core.demo import oms_demo as demo

    return demo.main(bool(args.json), args.dir)
