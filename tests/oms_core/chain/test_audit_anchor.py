"""The AuditAnchor contract and its sender and reader, on a real anvil.

What an auditor relies on: only the owner's anchors are mined, they come back from
eth_getLogs exactly as sent, and a contract that is not the committed AuditAnchor (which
could emit the same events for anyone) is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from oms_core.audit.verify import log_id_hash
from oms_core.chain import artifacts, embedded
from oms_core.chain.audit_anchor import (
    ANCHORED_TOPIC,
    AnchorAccount,
    AnchorError,
    AnchorSender,
    anchor_calldata,
    check_contract,
    deploy_contract,
    read_anchors,
)
from oms_core.chain.endpoints import CallRequest, CallReverted
from oms_core.chain.web3_endpoint import Web3Endpoint
from oms_core.cli.oms_cli import main as oms_main
from testing import chain_support
from testing.chain_support import ANVIL_CHAIN_ID, AnvilNode

anvil_node = chain_support.anvil_node  # the fixture, by name, without a plugin
OWNER = AnchorAccount.from_private_key(b"\x5a" * 32)
STRANGER = AnchorAccount.from_private_key(b"\x5b" * 32)


def fund(anvil: AnvilNode, address: str) -> None:
    w3, dev = anvil.web3(), anvil.dev_account(1)
    tx = dev.sign_transaction({"to": Web3.to_checksum_address(address), "value": 10**18,
                               "gas": 21000, "gasPrice": 3 * 10**9, "chainId": anvil.chain_id,
                               "nonce": w3.eth.get_transaction_count(dev.address, "pending")})
    w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(tx.raw_transaction))


@pytest.fixture(scope="module")
def contract(anvil_node: AnvilNode) -> str:
    fund(anvil_node, OWNER.address)
    fund(anvil_node, STRANGER.address)
    return deploy_contract(anvil_node.endpoint(), OWNER, chain_id=ANVIL_CHAIN_ID)[0]


def sender(anvil: AnvilNode, account: AnchorAccount, contract: str) -> AnchorSender:
    return AnchorSender([anvil.endpoint("a"), anvil.endpoint("b")], account, contract,
                        chain_id=ANVIL_CHAIN_ID, confirmations=1, max_fee_cap=None,
                        timeout_s=30, poll_s=0.05)


def test_the_owner_anchors_and_the_reader_gets_it_back(anvil_node: AnvilNode,
                                                       contract: str) -> None:
    endpoint = anvil_node.endpoint()
    assert check_contract(endpoint, contract) == OWNER.address
    s = sender(anvil_node, OWNER, contract)
    s.check()
    sent = [s.anchor("oms", size, bytes([size]) * 32) for size in (3, 7)]
    anchors = [a for a in read_anchors(endpoint, contract) if a.tx_hash in {h for h, _ in sent}]
    assert [(a.tree_size, a.root_hash, a.tx_hash, a.block_number) for a in anchors] == [
        (3, b"\x03" * 32, sent[0][0], sent[0][1]), (7, b"\x07" * 32, sent[1][0], sent[1][1])]
    assert {a.log_id_hash for a in anchors} == {log_id_hash("oms")}
    assert f"tx 0x{sent[1][0].hex()}" in anchors[1].label


def test_a_stranger_cannot_anchor(anvil_node: AnvilNode, contract: str) -> None:
    endpoint = anvil_node.endpoint()
    with pytest.raises(CallReverted, match="AuditAnchor: not the owner"):
        endpoint.estimate_gas(CallRequest(STRANGER.address, contract,
                                          anchor_calldata("oms", 1, b"\x01" * 32)))
    with pytest.raises(AnchorError, match=f"owned by {OWNER.address}, not by the anchor "
                                          f"account {STRANGER.address}"):
        sender(anvil_node, STRANGER, contract).check()


def test_an_empty_tree_is_not_anchored(anvil_node: AnvilNode, contract: str) -> None:
    with pytest.raises(CallReverted, match="empty tree"):
        anvil_node.endpoint().estimate_gas(CallRequest(
            OWNER.address, contract, anchor_calldata("oms", 0, b"\x00" * 32)))


def test_other_code_at_the_address_is_refused(anvil_node: AnvilNode) -> None:
    """A look-alike (here: a Token) could emit events with the same topic for anyone."""
    w3 = anvil_node.web3()
    dev = anvil_node.dev_account(2).address.lower()
    token = embedded.deploy(w3, artifacts.load(artifacts.TOKEN), ["T", "T", 6], dev)
    endpoint = anvil_node.endpoint()
    with pytest.raises(AnchorError, match="is not an AuditAnchor"):
        check_contract(endpoint, token)
    with pytest.raises(AnchorError, match=r"is not an AuditAnchor \(no code\)"):
        check_contract(endpoint, STRANGER.address)


def test_the_keystore_round_trips_and_a_wrong_passphrase_is_one_line(
        tmp_path: Path) -> None:
    path = tmp_path / "anchor.json"
    keystore = Account.encrypt(b"\x5a" * 32, "pass", kdf="scrypt", iterations=2**10)
    path.write_text(Web3.to_json(keystore))
    assert AnchorAccount.from_keystore(path, b"pass").address == OWNER.address
    with pytest.raises(AnchorError, match="cannot decrypt the anchor key file") as caught:
        AnchorAccount.from_keystore(path, b"wrong")
    assert "\n" not in str(caught.value)
    assert "5a5a" not in repr(OWNER)


def test_the_event_topic_is_the_contracts() -> None:
    abi = artifacts.load(artifacts.AUDIT_ANCHOR).abi
    event = next(e for e in abi if e.get("type") == "event")
    signature = f"{event['name']}({','.join(i['type'] for i in event['inputs'])})"
    assert Web3.keccak(text=signature) == ANCHORED_TOPIC


def test_endpoint_logs_filter_by_address(anvil_node: AnvilNode, contract: str) -> None:
    endpoint: Web3Endpoint = anvil_node.endpoint()
    latest = endpoint.block(None).number
    assert endpoint.logs(STRANGER.address, [ANCHORED_TOPIC], 0, latest) == []


def test_oms_anchor_new_key_and_deploy(anvil_node: AnvilNode, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """What an operator runs once: a fresh anchor account, funded, owning a new contract."""
    passphrase = tmp_path / "anchor.passphrase"
    passphrase.write_text("a long passphrase\n")
    passphrase.chmod(0o644)
    keystore = tmp_path / "anchor.keystore.json"
    new_key = ["anchor", "new-key", "--out", str(keystore), "--passphrase-file",
               str(passphrase)]
    assert oms_main(new_key) == 2
    assert "may be read by other users" in capsys.readouterr().err
    passphrase.chmod(0o600)
    assert oms_main(new_key) == 0
    address = json.loads(capsys.readouterr().out)["address"]
    assert oct(keystore.stat().st_mode & 0o777) == "0o600"
    assert AnchorAccount.from_keystore(keystore, b"a long passphrase").address == address
    assert oms_main(new_key) == 2 and "refusing to overwrite" in capsys.readouterr().err
    fund(anvil_node, address)
    deploy = ["anchor", "deploy", "--rpc", anvil_node.url, "--key-file", str(keystore),
              "--passphrase-file", str(passphrase), "--chain-id"]
    assert oms_main([*deploy, "1"]) == 2
    assert f"serves chain {ANVIL_CHAIN_ID}, not 1" in capsys.readouterr().err
    assert oms_main([*deploy, str(ANVIL_CHAIN_ID)]) == 0
    deployed = json.loads(capsys.readouterr().out)
    assert deployed["owner"] == address
    assert check_contract(anvil_node.endpoint(), deployed["contract"]) == address
    assert anvil_node.endpoint().code(deployed["contract"])
    assert anvil_node.endpoint().block(deployed["block"]).number == deployed["block"]
