"""``oms risk report``: the scenario table of the live configuration (``oms_core.risk``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mpcnode.ceremony.cluster_file import load_cluster_config
from oms_core.app.oms_config import load_settings
from oms_core.cli.exit_status import EXIT_OK
from oms_core.risk import risk_report
from oms_core.risk.live_risk import active_policy, live_risk_config


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    risk = commands.add_parser("risk", help="risk report of the live configuration")
    risk_commands = risk.add_subparsers(dest="risk_command", required=True)
    report = risk_commands.add_parser("report", help="print the scenario table")
    report.add_argument("--config", type=Path, required=True, help="oms.toml")
    report.add_argument("--json", action="store_true")
    report.set_defaults(handler=_risk_report)


def _risk_report(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    cluster = load_cluster_config(settings.cluster_dir / "cluster.toml")
    report = risk_report(live_risk_config(settings, cluster, active_policy(settings)))
    if args.json:
        print(report.to_json())
    else:
        print(report.to_text(), end="")
    return EXIT_OK
