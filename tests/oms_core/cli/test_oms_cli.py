"""``oms`` (``oms_core.cli.oms_cli.main``): exit codes and messages against an in-process OMS server
whose signer is the TEST ONLY single-key stand-in (see oms_rpc_support), plus ``oms init``,
``oms serve`` and ``oms risk report`` on a local cluster directory."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import stat
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from mpcnode.ceremony.cluster_init import init_cluster
from mpcnode.core.config_schema import ConfigError
from oms_core.app.oms_config import load_settings
from oms_core.audit.signing_key import load_signer, write_public_key
from oms_core.cli.authenticator_file import save_authenticator
from oms_core.cli.client_challenge import ChallengeCheckError, challenge_to_sign
from oms_core.cli.oms_cli import main
from oms_core.cli.oms_client import OmsCallError, OmsClient
from oms_core.daemon.runtime import serve
from oms_core.rpc import oms_pb2 as pb
from test_only.soft_authenticator import SoftwareAuthenticator
from testing.contract_policy import permit
from testing.oms_rpc_support import (
    RP,
    TREASURY,
    UNKNOWN,
    World,
    admin_pem,
    policy_text,
    running_world,
)
from testing.production_process import without_test_only
from zero_trust.authorization import SigningRequest


@dataclasses.dataclass
class Run:
    code: int
    out: str
    err: str


@dataclasses.dataclass
class Cli:
    world: World
    tmp: Path
    capsys: pytest.CaptureFixture[str]

    def authenticator(self, user: str) -> Path:
        return self.tmp / f"{user}.authenticator.json"

    def __call__(self, *args: str, user: str = "tina", auth: bool = False) -> Run:
        argv = [*args, "--server", self.world.target,
                "--token-file", str(self.tmp / f"{user}.token")]
        if auth:
            argv += ["--authenticator", str(self.authenticator(user)),
                     "--rp-id", RP.rp_id, "--origin", RP.origin]
        self.capsys.readouterr()
        code = main(argv)
        captured = self.capsys.readouterr()
        return Run(code, captured.out, captured.err)

    def login(self, user: str) -> Run:
        run = self("login", "--user", user, user=user, auth=True)
        assert run.code == 0, run.err
        return run

    def submit(self, eth: str, to: str = TREASURY, user: str = "tina") -> Run:
        return self("submit", "--asset", "ETH", "--amount", eth, "--to", to, "--json",
                    user=user)


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Cli]:
    with running_world(tmp_path) as world:
        for user, person in world.people.items():
            save_authenticator(tmp_path / f"{user}.authenticator.json", person.authenticator)
        for admin, key in world.admin_keys.items():
            (tmp_path / f"{admin}.key").write_bytes(admin_pem(key))
            os.chmod(tmp_path / f"{admin}.key", 0o600)
        yield Cli(world, tmp_path, capsys)


def request_id(run: Run) -> str:
    assert run.code == 0, run.err
    rid: str = json.loads(run.out)["request_id"]
    return rid


# --- the request flows ---------------------------------------------------------------


def test_login_keeps_a_private_token_and_the_moved_counter(cli: Cli) -> None:
    before = SoftwareAuthenticator.from_state_json(cli.authenticator("tina").read_bytes())
    run = cli.login("tina")
    assert run.out.startswith("logged in as tina")
    token = cli.tmp / "tina.token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600 and len(token.read_text().strip()) == 43
    after = SoftwareAuthenticator.from_state_json(cli.authenticator("tina").read_bytes())
    assert after.sign_count == before.sign_count + 1
    assert stat.S_IMODE(cli.authenticator("tina").stat().st_mode) == 0o600
    cli.login("tina")  # the saved counter lets the next login through


def test_submit_under_limit_then_confirm_signs(cli: Cli) -> None:
    cli.login("tina")
    rid = request_id(cli.submit("1.5"))
    run = cli("confirm", rid, auth=True)
    assert run.code == 0, run.err
    assert f"confirm request {rid}: chain 1337, nonce chosen at signing, to {TREASURY}, value " \
           f"{15 * 10**17} wei" in run.err
    assert "state       signed" in run.out and "signed tx   0x02" in run.out
    got = json.loads(cli("get", rid, "--json").out)
    assert got["state"] == "signed" and got["rule"] == "trader-within-limits"


def test_over_limit_is_pending_until_the_risk_officer_approves(cli: Cli) -> None:
    cli.login("tina")
    cli.login("rita")
    rid = request_id(cli.submit("6"))
    assert json.loads(cli("confirm", rid, "--json", auth=True).out)["state"] \
        == "pending_approval"
    pending = cli("pending", user="rita")
    assert pending.code == 0 and rid in pending.out and "needs risk_officer x1" in pending.out
    run = cli("approve", rid, "--json", user="rita", auth=True)
    assert run.code == 0, run.err
    view = json.loads(run.out)
    assert view["state"] == "signed" and view["approved_by"] == ["rita"]
    assert cli("pending", user="rita").out == "no request awaits approval\n"


def test_personal_message_shown_approved_and_signed_never_broadcast(cli: Cli) -> None:
    cli.login("tina")
    cli.login("rita")
    run = cli("submit", "--personal-message", "I control this wallet", "--json")
    rid = request_id(run)
    assert json.loads(run.out)["kind"] == "personal_sign"
    run = cli("confirm", rid, "--json", auth=True)
    assert run.code == 0, run.err
    assert "personal message 'I control this wallet'" in run.err
    assert json.loads(run.out)["state"] == "pending_approval"
    view = json.loads(cli("approve", rid, "--json", user="rita", auth=True).out)
    assert view["state"] == "signed" and view["signed_transaction"] == ""
    signature = bytes.fromhex(view["signature"][2:])
    signer = Account.recover_message(
        encode_defunct(b"I control this wallet"),
        vrs=(signature[64] + 27, int.from_bytes(signature[:32], "big"),
             int.from_bytes(signature[32:64], "big")))
    assert signer == cli.world.signer.address


def test_typed_data_no_policy_entry_covers_is_refused(cli: Cli) -> None:
    cli.login("tina")
    doc = permit(TREASURY, TREASURY, 5)
    (cli.tmp / "permit.json").write_text(json.dumps(doc))
    run = cli("submit", "--typed-data", str(cli.tmp / "permit.json"))
    assert run.code == 1 and run.err.startswith("PolicyDenied: typed_data refused: no "
                                                "typed_data entry of the policy covers")
    (cli.tmp / "bad.json").write_text('{"types": {}}')
    run = cli("submit", "--typed-data", str(cli.tmp / "bad.json"))
    assert run.code == 2 and "bad.json" in run.err and run.err.count("\n") == 1
    run = cli("submit", "--asset", "ETH")
    assert run.code == 2 and "submit needs --amount, --to" in run.err


def test_unknown_destination_prints_the_policy_denial_on_one_line(cli: Cli) -> None:
    cli.login("tina")
    run = cli.submit("0.1", to=UNKNOWN)
    assert run.code == 1 and run.out == ""
    assert run.err.startswith('PolicyDenied: rule "unknown-destination": ')
    assert run.err.count("\n") == 1 and f"{UNKNOWN}" in run.err


@pytest.mark.parametrize("args,message", [
    (("--amount", "1e1000000"), "AmountError: --amount '1e1000000' must be ASCII digits"),
    (("--amount", "\uff11"), "AmountError: --amount '\\uff11' must be ASCII digits"),
    (("--amount", "9" * 200_000), "AmountError: --amount '9999"),
    (("--amount", "1", "--value", "-1"), "AmountError: --value '-1' must be ASCII digits"),
    (("--amount", "1", "--to", "0x7e5F4552091A69125d5DfCb7b8C2659029395Bdf"),
     "AddressError: --to '0x7e5F4552091A69125d5DfCb7b8C2659029395Bdf' has a bad EIP-55"),
    (("--amount", "1", "--to", "0x7e5f"), "AddressError: --to '0x7e5f' is not a 0x address"),
])
def test_submit_refuses_bad_input_on_one_line_before_sending(
        cli: Cli, args: tuple[str, ...], message: str) -> None:
    cli.login("tina")
    argv = ["submit", "--asset", "ETH", "--to", TREASURY, *args]
    run = cli(*argv)
    assert run.code == 2 and run.out == "" and run.err.count("\n") == 1, run.err
    assert run.err.startswith(message), run.err
    assert cli.world.core.run(lambda c: c.requests.list()) == ()


def test_address_book_add_refuses_a_bad_checksum(cli: Cli) -> None:
    cli.login("admin1")
    typo = "0xABaBaBaBABabABabAbAbABAbABabababaBaBABab"  # the last letter's case flipped
    run = cli("address-book", "add", "--label", "x", "--address", typo, "--kind", "wallet",
              user="admin1")
    assert run.code == 2 and run.err == (f"AddressError: --address '{typo}' has a bad EIP-55 "
                                         "checksum (a typo?); give the address exactly as "
                                         "its owner wrote it\n")


def test_initiator_approving_own_request_is_refused(cli: Cli) -> None:
    cli.login("tom")
    rid = request_id(cli.submit("6", user="tom"))
    assert cli("confirm", rid, user="tom", auth=True).code == 0
    run = cli("approve", rid, user="tom", auth=True)
    what, error = run.err.splitlines()  # what was signed, then the refusal
    assert what.startswith(f"approve request {rid}: chain 1337")
    assert run.code == 1 and error == (f'SeparationOfDuties: "tom" initiated request {rid} '
                                       "and cannot approve it")


def test_expired_session_asks_for_a_new_login(cli: Cli) -> None:
    cli.login("tina")
    cli.world.clock.now += 16 * 60  # past the idle time-out of 15 min
    run = cli.submit("1")
    assert (run.code, run.err) == (1, "SessionExpired: session expired: idle for 16 min "
                                      "(limit 15 min)\n")
    cli.login("tina")
    assert cli.submit("1").code == 0


def test_reject_get_and_logout(cli: Cli) -> None:
    cli.login("tina")
    cli.login("andy")
    rid = request_id(cli.submit("6"))
    cli("confirm", rid, auth=True)
    run = cli("reject", rid, "--reason", "no such trade", user="andy")
    assert run.code == 0 and "state       rejected" in run.out and "no such trade" in run.out
    missing = cli("get", "nope")
    assert (missing.code, missing.err) == (1, "NotFound: request nope not found\n")
    assert cli("logout").code == 0 and not (cli.tmp / "tina.token").exists()
    run = cli("get", rid)
    assert run.code == 2 and run.err.startswith("TokenFileError: not logged in")


# --- policy --------------------------------------------------------------------------


def test_policy_change_takes_two_admins(cli: Cli) -> None:
    cli.login("admin1")
    cli.login("admin2")
    old = json.loads(cli("policy", "get", "--json", user="admin1").out)
    (cli.tmp / "v2.toml").write_text(policy_text(2))
    run = cli("policy", "propose", str(cli.tmp / "v2.toml"), "--json", user="admin1")
    assert run.code == 0, run.err
    h = json.loads(run.out)["bundle_hash"]
    run = cli("policy", "approve", h, "--admin-key", str(cli.tmp / "admin1.key"),
              user="admin1")
    assert run.code == 0 and "pending (1 of 2 admins)" in run.out
    now = cli("policy", "get", user="admin2").out
    assert f"bundle {old['bundle_hash']}" in now and f"pending v2 {h}" in now
    run = cli("policy", "approve", h, "--admin-key", str(cli.tmp / "admin2.key"),
              user="admin2")
    assert run.code == 0 and "ACTIVE" in run.out
    new = json.loads(cli("policy", "get", "--json", user="admin1").out)
    assert (new["bundle_hash"], new["version"], new["pending"]) == (h, 2, [])
    assert cli.world.signer.installed[-1] == h


def test_policy_approve_refuses_a_malformed_hash_and_a_foreign_key(cli: Cli) -> None:
    cli.login("admin1")
    run = cli("policy", "approve", "abc", "--admin-key", str(cli.tmp / "admin1.key"),
              user="admin1")
    assert run.code == 2 and "not a bundle hash" in run.err
    (cli.tmp / "v2.toml").write_text(policy_text(2))
    h = json.loads(cli("policy", "propose", str(cli.tmp / "v2.toml"), "--json",
                       user="admin1").out)["bundle_hash"]
    run = cli("policy", "approve", h, "--admin-key", str(cli.tmp / "admin3.key"),
              user="admin1")  # admin1's session, admin3's key
    assert run.code == 1 and run.err.startswith("InvalidInputError: the signature of admin "
                                                "'admin1'")


def test_address_book_add_is_a_pending_proposal(cli: Cli) -> None:
    cli.login("admin1")
    run = cli("address-book", "add", "--label", "desk", "--address", UNKNOWN, "--kind",
              "wallet", user="admin1")
    assert run.code == 0 and "add wallet desk" in run.out and "pending" in run.out


# --- client-side checks --------------------------------------------------------------


def test_authenticator_file_readable_by_others_is_refused(cli: Cli) -> None:
    os.chmod(cli.authenticator("tina"), 0o644)
    run = cli("login", "--user", "tina", auth=True)
    assert run.code == 2 and "chmod 600" in run.err and run.err.startswith(
        "AuthenticatorStateError:")


def test_unreachable_server_and_plaintext_off_loopback(cli: Cli, tmp_path: Path) -> None:
    run = main(["get", "x", "--server", "127.0.0.1:1", "--token-file",
                str(_token(tmp_path)), "--timeout", "3"])
    assert run == 1 and "cannot reach the OMS at 127.0.0.1:1" in cli.capsys.readouterr().err
    run = main(["get", "x", "--server", "10.1.2.3:7600", "--token-file", str(_token(tmp_path))])
    assert run == 2 and "refusing plaintext" in cli.capsys.readouterr().err


def _token(tmp: Path) -> Path:
    path = tmp / "some.token"
    path.write_text("A" * 43)
    os.chmod(path, 0o600)
    return path


def test_client_recomputes_the_challenge_and_refuses_a_tampered_view(cli: Cli) -> None:
    cli.login("tina")
    rid = request_id(cli.submit("1"))
    with OmsClient(cli.world.target, ca_pem=None) as client:
        token = (cli.tmp / "tina.token").read_text().strip()
        view = client.get(token, rid)
    to_sign = challenge_to_sign(view, rid)
    assert to_sign.challenge == view.challenge
    signing = SigningRequest.from_canonical(view.signing_request)
    assert to_sign.expires_at == signing.expires_at and "valid until" in to_sign.describe()
    later = dataclasses.replace(signing, expires_at=signing.expires_at + 86400).canonical()
    tampered = [
        (pb.RequestView(), "challenge", b"\x00" * 32),  # the server's word alone
        (pb.RequestView(), "destination", UNKNOWN),  # the view lies about the payee
        (pb.RequestView(), "policy_hash", "00" * 32),  # another policy
        (pb.RequestView(), "signing_request", b"{}"),
        (pb.RequestView(), "signing_request", later),  # a deadline not the one approved
    ]
    for blank, field, value in tampered:
        blank.CopyFrom(view)
        setattr(blank, field, value)
        with pytest.raises(ChallengeCheckError):
            challenge_to_sign(blank, rid)
    with pytest.raises(ChallengeCheckError, match="asked for request other"):
        challenge_to_sign(view, "other")


def test_audit_commands_are_mounted(cli: Cli) -> None:
    cli.login("tina")
    cli.world.core.run(lambda c: c.sign_tree_head())
    write_public_key(cli.tmp / "audit.pub.pem", cli.world.audit_key.public_key)
    code = main(["audit", "verify", "--db", str(cli.world.db), "--public-key",
                 str(cli.tmp / "audit.pub.pem")])
    out = cli.capsys.readouterr().out
    assert code == 0 and out.startswith("audit log 'oms' OK")


# --- init, serve, risk report --------------------------------------------------------


@pytest.fixture
def cluster(tmp_path: Path) -> Path:
    root = tmp_path / "cluster"
    init_cluster(root, 3, 2, base_port=7300)
    return root


DEMO = ["--demo-person", "tina:trader", "--demo-person", "rita:risk_officer",
        "--demo-person", "andy:approver", "--demo-person", "admin1:admin",
        "--demo-person", "admin2:admin"]


def test_init_writes_a_private_instance_and_the_risk_report_flags_fixed_prices(
        cluster: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "oms"
    assert main(["init", "--cluster", str(cluster), "--key-id", "ab" * 32, "--out", str(out),
                 "--price", "ETH=2500", "--wallet-value-usd", "5000000", *DEMO]) == 0
    settings = load_settings(out / "oms.toml")
    assert settings.key_id == bytes.fromhex("ab" * 32) and str(settings.prices["ETH"]) == "2500"
    assert settings.tls is not None and settings.tls.ca == cluster / "ca" / "ca.pem"
    for secret in ("audit.key", "audit.passphrase", "tls/oms.key",
                   "people/tina.authenticator.json"):
        assert stat.S_IMODE((out / secret).stat().st_mode) == 0o600, secret
    load_signer(settings.audit_key, settings.read_audit_passphrase())  # the pair works
    capsys.readouterr()
    assert main(["risk", "report", "--config", str(out / "oms.toml")]) == 0
    text = capsys.readouterr().out
    assert text.startswith('Risk report: policy "default" v1') and "2-of-3 signing" in text
    assert "asset ETH: only 1 price source(s)" in text and "FLAGGED" in text
    assert main(["risk", "report", "--config", str(out / "oms.toml"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "oracle-manipulation" in report["flagged"] and report["threshold"] == 2
    assert report["wallet_value_usd"] == "5000000"


def test_init_refusals(cluster: Path, tmp_path: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    base = ["init", "--cluster", str(cluster), "--key-id", "ab" * 32]
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x").write_text("x")
    assert main([*base, "--out", str(taken)]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "a"), "--demo-person", "mallory:admin"]) == 2
    assert "must be the cluster's admins (admin1, admin2, admin3)" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "b"), "--no-tls", "--listen",
                 "0.0.0.0:7600"]) == 2
    assert "refusing to serve without TLS" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "b"), "--listen", "127.0.0.1:0"]) == 2
    assert "port must be 1..65535" in capsys.readouterr().err
    (cluster / "ca" / "ca.key").unlink()  # moved offline after the ceremony
    assert main([*base, "--out", str(tmp_path / "c")]) == 2
    assert "--no-tls" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "d"), "--no-tls"]) == 0


def test_a_refused_init_leaves_nothing_behind_and_can_be_run_again(
        cluster: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Refused after the audit key and the TLS key were made (a stranger with the admin
    role): neither OUT nor any half-written directory remains, and the corrected command
    succeeds."""
    out = tmp_path / "deep" / "oms"
    base = ["init", "--cluster", str(cluster), "--key-id", "ab" * 32, "--out", str(out)]
    assert main([*base, *DEMO, "--demo-person", "mallory:admin"]) == 2
    assert "must be the cluster's admins" in capsys.readouterr().err
    assert not out.exists() and list((tmp_path / "deep").iterdir()) == []
    for admin in ("admin2", "admin3"):  # one key short of the quorum of 2
        (cluster / "admins" / f"{admin}.key").rename(tmp_path / f"{admin}.key")
    assert main([*base, *DEMO]) == 2
    assert "the bootstrap bundle needs 2" in capsys.readouterr().err
    assert list((tmp_path / "deep").iterdir()) == []
    (tmp_path / "admin2.key").rename(cluster / "admins" / "admin2.key")
    out.mkdir()  # an empty OUT is fine
    assert main([*base, *DEMO]) == 0, capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["oms"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    settings = load_settings(out / "oms.toml")
    assert settings.tls is not None and settings.tls.key == out / "tls" / "oms.key"
    assert settings.bootstrap_bundle == out / "bootstrap-bundle.json"
    assert settings.bootstrap_bundle.is_file() and settings.tls.key.is_file()
    load_signer(settings.audit_key, settings.read_audit_passphrase())


BINARY = bytes(range(256)) * 4  # not UTF-8, not PEM, not JSON, not TOML


def test_every_unreadable_input_file_is_one_line_naming_it(
        cli: Cli, cluster: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A careless operator passes a binary file (or a directory) where a file is read: each
    command ends with exit 2 and one line that names the file, never a traceback."""
    cli.login("admin1")
    bad = tmp_path / "garbage.bin"
    bad.write_bytes(BINARY)
    os.chmod(bad, 0o600)
    server = ["--server", cli.world.target, "--token-file", str(cli.tmp / "admin1.token")]
    commands = [
        ["policy", "propose", str(bad), *server],
        ["policy", "approve", "ab" * 32, "--admin-key", str(bad), *server],
        ["get", "x", "--server", cli.world.target, "--token-file", str(bad)],
        ["get", "x", "--ca", str(bad), *server],
        ["get", "x", "--config", str(bad), *server],
        ["confirm", "x", "--authenticator", str(bad), *server],
        ["risk", "report", "--config", str(bad)],
        ["audit", "verify", "--db", str(cli.world.db), "--public-key", str(bad)],
        ["audit", "check-proof", str(bad), "--public-key", str(bad)],
        ["init", "--cluster", str(cluster), "--key-id", "ab" * 32, "--out",
         str(tmp_path / "new"), "--policy", str(bad), "--demo-person", "admin1:admin",
         "--demo-person", "admin2:admin"],
        ["init", "--cluster", str(bad), "--key-id", "ab" * 32, "--out", str(tmp_path / "n2")],
    ]
    for argv in commands:
        capsys.readouterr()
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1, (argv, err)
        assert str(bad) in err, (argv, err)
        assert "Traceback" not in err
    assert not (tmp_path / "new").exists()


def test_settings_refuse_unknown_keys(cluster: Path, tmp_path: Path) -> None:
    assert main(["init", "--cluster", str(cluster), "--key-id", "ab" * 32, "--out",
                 str(tmp_path / "oms")]) == 0
    path = tmp_path / "oms" / "oms.toml"
    path.write_text(path.read_text().replace("[oms]", "[oms]\nlisten_all = true"))
    with pytest.raises(ConfigError, match=r"oms\.listen_all: unknown key"):
        load_settings(path)


def test_serve_over_tls_until_stopped(cluster: Path, tmp_path: Path) -> None:
    """``oms serve``'s wiring (no nodes needed until something is signed): TLS with the
    certificate from the cluster CA, health, then a graceful stop."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["init", "--cluster", str(cluster), "--key-id", "ab" * 32, "--out",
                 str(tmp_path / "oms"), "--listen", f"127.0.0.1:{port}"]) == 0
    settings = load_settings(tmp_path / "oms" / "oms.toml")
    stop, ready = threading.Event(), threading.Event()
    result: list[int] = []
    daemon = threading.Thread(target=lambda: result.append(
        serve(settings, stop=stop, on_ready=lambda _port: ready.set())))
    daemon.start()
    try:
        assert ready.wait(10)
        assert settings.tls is not None
        with OmsClient(f"127.0.0.1:{port}", ca_pem=settings.tls.ca.read_bytes(),
                       timeout=5) as client:
            assert client.healthy()
            with pytest.raises(OmsCallError, match="no policy is active yet"):
                client.login_begin("tina")  # nobody is registered before a policy
    finally:
        stop.set()
        daemon.join(15)
    assert result == [0]


def test_serve_without_reachable_nodes_fails_on_one_line(
        cluster: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The bootstrap policy must reach every node; none is running here."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["init", "--cluster", str(cluster), "--key-id", "ab" * 32, "--out",
                 str(tmp_path / "oms"), "--listen", f"127.0.0.1:{port}", *DEMO]) == 0
    capsys.readouterr()
    # The test process has test_only loaded, beside which `oms serve` refuses to run.
    assert main(["serve", "--config", str(tmp_path / "oms" / "oms.toml")]) == 2
    assert capsys.readouterr().err == (
        "FenceError: oms serve refuses to run: the TEST ONLY package 'test_only' is loaded "
        f"({', '.join(sorted(m for m in sys.modules if m.split('.')[0] == 'test_only'))}); "
        "a production daemon never imports it\n")
    without_test_only(monkeypatch)
    assert main(["serve", "--config", str(tmp_path / "oms" / "oms.toml")]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("StartupError: cannot adopt the bootstrap policy ")
    assert "SignerNodeError: a signer node answered UNAVAILABLE" in err
