"""``oms anchor``: set up the on-chain audit anchor that ``oms serve`` sends its tree heads to.

    oms anchor new-key --out anchor.keystore.json --passphrase-file anchor.passphrase
    oms anchor deploy --rpc URL --chain-id N --key-file anchor.keystore.json
                      --passphrase-file anchor.passphrase

``new-key`` makes the anchor account: a fresh key in an Ethereum keystore (v3, scrypt),
never the custody key; fund its printed address with gas only. ``deploy`` deploys an
``AuditAnchor`` owned by that account and prints its address and block, which go into
oms.toml's ``[audit.anchor] contract`` and an auditor's ``oms audit verify --anchors
CONTRACT --from-block BLOCK``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import coincurve
from eth_account import Account

from mpcnode.state.atomic_file import write_new
from oms_core.app.oms_config import read_private_file
from oms_core.chain.audit_anchor import AnchorAccount, check_contract, deploy_contract
from oms_core.chain.web3_endpoint import Web3Endpoint
from oms_core.oms_core_errors import OmsCoreError


class AnchorSetupError(OmsCoreError):
    """The anchor account or contract cannot be set up as asked."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    anchor = commands.add_parser("anchor", help="set up the on-chain audit anchor")
    actions = anchor.add_subparsers(dest="anchor_command", required=True)
    new_key = actions.add_parser("new-key", help="a new anchor account (keystore v3 JSON)")
    new_key.add_argument("--out", type=Path, required=True, help="keystore file to create")
    new_key.add_argument("--passphrase-file", type=Path, required=True,
                         help="its passphrase (mode 0600)")
    new_key.set_defaults(handler=_new_key)
    deploy = actions.add_parser("deploy", help="deploy an AuditAnchor owned by the account")
    deploy.add_argument("--rpc", required=True, help="JSON-RPC URL of the chain")
    deploy.add_argument("--chain-id", type=int, required=True)
    deploy.add_argument("--key-file", type=Path, required=True, help="the anchor keystore")
    deploy.add_argument("--passphrase-file", type=Path, required=True)
    deploy.set_defaults(handler=_deploy)


def _new_key(args: argparse.Namespace) -> int:
    passphrase = read_private_file(args.passphrase_file, "--passphrase-file",
                                   args.passphrase_file)
    key = coincurve.PrivateKey().secret  # libsecp256k1 draws it from the OS
    keystore = Account.encrypt(key, passphrase.decode("utf-8"))
    if not write_new(args.out, json.dumps(keystore).encode()):
        raise AnchorSetupError(f"{args.out} already exists; refusing to overwrite it")
    address = AnchorAccount.from_private_key(key).address
    print(json.dumps({"keystore": str(args.out), "address": address}))
    return 0


def _deploy(args: argparse.Namespace) -> int:
    passphrase = read_private_file(args.passphrase_file, "--passphrase-file",
                                   args.passphrase_file)
    account = AnchorAccount.from_keystore(args.key_file, passphrase)
    endpoint = Web3Endpoint.http(args.rpc)
    if endpoint.chain_id() != args.chain_id:
        raise AnchorSetupError(f"{args.rpc} serves chain {endpoint.chain_id()}, not "
                               f"{args.chain_id}")
    contract, block = deploy_contract(endpoint, account, chain_id=args.chain_id)
    owner = check_contract(endpoint, contract)
    print(json.dumps({"contract": contract, "owner": owner, "block": block}))
    return 0
