"""Offline verification of ceremony transcripts made by real nodes over mutual TLS.

One in-process cluster (3 nodes, 2-of-3, TEST ONLY primes) runs keygen, aux info and a
refresh (+ aux info) once for the module. Tampering happens on the JSON file, as an
attacker would do it; "malicious node" tests re-sign a bad payload with the node's own
identity key, so only the protocol audit can catch it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import coincurve
import pytest
from Crypto.Hash import keccak
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from coordinator import ceremony_transcript as transcript
from coordinator.ceremony_transcript import Transcript, TranscriptError
from coordinator.transcript_verify import (
    VerifiedCeremony,
    check_cluster,
    identities_in_force,
    verify,
)
from ethereum.addresses import eip55, ethereum_address
from mpcnode.ceremony import identity_change as ic
from mpcnode.ceremony.cluster_file import ClusterConfig
from mpcnode.ceremony.node_config import load_identity_keys
from mpcnode.crypto import codec
from mpcnode.crypto.group import Point
from mpcnode.protocol import aux_info, keygen, refresh
from mpcnode.protocol.results import AuxResult, KeygenResult
from mpcnode.transport import ceremony_closing, envelope
from mpcnode.transport.identity import IdentityKeys, IdentityPublic
from test_only.node_switches import load_test_node_config
from testing.cluster_harness import in_process_cluster

Doc = dict[str, Any]
KG, AUX, RF, AUX2 = 0, 1, 2, 3  # session indexes in the refreshed transcript


@dataclasses.dataclass(frozen=True)
class Ceremony:
    key: KeygenResult
    refreshed_key: KeygenResult
    initial: Transcript  # keygen + aux info: what `mpc-ceremony keygen` writes
    refreshed: Transcript  # + refresh + aux info
    initial_json: str
    refreshed_json: str
    keys: dict[int, IdentityKeys]  # TEST ONLY: to play a malicious node
    cluster: ClusterConfig  # the cluster.toml an auditor trusts
    admin_keys: dict[str, Ed25519PrivateKey]  # the cluster's admins (quorum 2 of 3)


@pytest.fixture(scope="module")
def ceremony(tmp_path_factory: pytest.TempPathFactory) -> Ceremony:
    root = tmp_path_factory.mktemp("cluster")
    with in_process_cluster(root, 3, 2) as coordinator:
        cluster = coordinator.config.cluster
        kg, rec1 = coordinator.keygen()
        _, rec2 = coordinator.aux_info(kg.key_id)
        pub = kg.public_key.to_bytes()
        initial = transcript.close(transcript.from_records(cluster, kg.key_id, pub,
                                                           [rec1, rec2]),
                                   coordinator.close_transcript(kg.key_id))
        refreshed_key, recs = coordinator.refresh(kg.key_id)
        refreshed = transcript.close(transcript.from_records(cluster, kg.key_id, pub,
                                                             [rec1, rec2, *recs]),
                                     coordinator.close_transcript(kg.key_id))
    keys = {i: load_identity_keys(load_test_node_config(root / f"node{i}" / "node.toml")[0])
            for i in (1, 2, 3)}
    admin_keys = {}
    for a in cluster.admins:
        key = load_pem_private_key((root / "admins" / f"{a}.key").read_bytes(), None)
        assert isinstance(key, Ed25519PrivateKey)
        admin_keys[a] = key
    return Ceremony(kg, refreshed_key, initial, refreshed, transcript.to_json(initial),
                    transcript.to_json(refreshed), keys, cluster, admin_keys)


@pytest.fixture(scope="module")
def verified(ceremony: Ceremony, tmp_path_factory: pytest.TempPathFactory) -> VerifiedCeremony:
    """The initial transcript written with transcript.write, loaded back and verified."""
    path = tmp_path_factory.mktemp("out") / "key.json"
    transcript.write(path, ceremony.initial)
    loaded = transcript.load(path)
    assert loaded == ceremony.initial
    return verify(loaded)


def _doc(c: Ceremony, *, refreshed: bool = False) -> Doc:
    doc: Doc = json.loads(c.refreshed_json if refreshed else c.initial_json)
    return doc


def _rejected(tmp_path: Path, doc: Doc) -> TranscriptError:
    """Write ``doc`` like a tampered file and return the error of load + verify."""
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(TranscriptError) as exc:
        verify(transcript.load(path))
    return exc.value


def _find(doc: Doc, session: int, rnd: str, sender: int, recipient: int = 0) -> int:
    msgs = doc["sessions"][session]["messages"]
    hits = [n for n, m in enumerate(msgs)
            if (m["round"], m["sender"], m["recipient"]) == (rnd, sender, recipient)]
    assert len(hits) == 1
    return hits[0]


def _flip_hex(text: str, pos: int) -> str:
    """Change the hex digit at ``pos`` (one nibble of one byte), staying valid hex."""
    pos %= len(text)
    return text[:pos] + format(int(text[pos], 16) ^ 1, "x") + text[pos + 1:]


def _flip_after(body_hex: str, marker: str) -> str:
    """Flip one byte of the body inside the field ``marker`` (a hex digit of its value)."""
    body = bytes.fromhex(body_hex)
    start = body.index(marker.encode()) + len(marker) + 4  # past `":"0x` / `":["`
    pos = next(i for i in range(start, len(body)) if chr(body[i]) in "0123456789abcdef")
    flipped = body[:pos] + format(int(chr(body[pos]), 16) ^ 1, "x").encode() + body[pos + 1:]
    return flipped.hex()


# --- an honest transcript -------------------------------------------------------------------


def test_real_transcript_verifies(ceremony: Ceremony, verified: VerifiedCeremony) -> None:
    kg = ceremony.key
    assert verified.key_id == kg.key_id
    assert verified.public_key == kg.public_key
    assert (verified.threshold, verified.parties, verified.epoch) == (2, (1, 2, 3), 0)
    assert verified.sessions == 2
    assert verified.messages == 9 + 15  # keygen: 3 rounds x 3; aux: 9 + 6 disclosed Π^fac


def test_ethereum_address_is_keccak_of_uncompressed_key(ceremony: Ceremony,
                                                        verified: VerifiedCeremony) -> None:
    uncompressed = coincurve.PublicKey(ceremony.key.public_key.to_bytes()).format(
        compressed=False)
    assert len(uncompressed) == 65 and uncompressed[0] == 4
    expected = keccak.new(digest_bits=256, data=uncompressed[1:]).digest()[-20:]
    assert verified.ethereum_address.lower() == "0x" + expected.hex()
    assert verified.ethereum_address == eip55(expected)


@pytest.mark.parametrize("address", [
    # EIP-55's own test vectors: all caps, all lower, mixed.
    "0x52908400098527886E0F7030069857D2E4169EE7",
    "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
    "0xde709f2102306220921060314715629080e2fb77",
    "0x27b1fdb04752bbc536007a920d24acb045561c26",
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
])
def test_eip55_vectors(address: str) -> None:
    assert eip55(bytes.fromhex(address[2:])) == address


def test_ethereum_address_of_private_key_one() -> None:
    # The well-known address of the secp256k1 private key 1.
    assert ethereum_address(Point.base_mul(1)) == "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"


def test_refreshed_transcript_verifies(ceremony: Ceremony) -> None:
    v = verify(ceremony.refreshed)
    assert (v.key_id, v.public_key, v.epoch) == (ceremony.key.key_id, ceremony.key.public_key, 1)
    assert ceremony.refreshed_key.epoch == 1
    assert (v.sessions, v.messages) == (4, 48)
    assert v.ethereum_address == ethereum_address(ceremony.key.public_key)


def test_every_session_records_the_epoch_it_served(ceremony: Ceremony) -> None:
    assert [s.params["epoch"] for s in ceremony.refreshed.sessions] == [0, 0, 0, 1]


def test_a_transcript_made_before_sessions_named_their_epoch_verifies(
        ceremony: Ceremony, tmp_path: Path) -> None:
    doc = _doc(ceremony, refreshed=True)
    for s in doc["sessions"]:
        del s["params"]["epoch"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(doc))
    assert verify(transcript.load(path)).epoch == 1


@pytest.mark.parametrize(("session", "epoch", "held"), [(KG, 1, 0), (RF, 1, 0), (AUX2, 0, 1)])
def test_a_session_naming_another_epoch_is_rejected(ceremony: Ceremony, tmp_path: Path,
                                                    session: int, epoch: int, held: int) -> None:
    doc = _doc(ceremony, refreshed=True)
    doc["sessions"][session]["params"]["epoch"] = epoch
    err = _rejected(tmp_path, doc)
    assert err.session == session
    assert f"params.epoch {epoch} is not the epoch of the key's shares before this " \
           f"session ({held})" in str(err)


# --- any flipped byte -----------------------------------------------------------------------

# (refreshed transcript?, session, round, sender, recipient, field inside the payload)
PROOF_FLIPS = [
    (False, KG, "keygen/1", 1, 0, '"V"'),
    (False, KG, "keygen/2", 2, 0, '"A"'),
    (False, KG, "keygen/2", 3, 0, '"F"'),
    (False, KG, "keygen/2", 1, 0, '"opening"'),
    (False, KG, "keygen/3", 3, 0, '"z"'),
    (False, KG, "keygen/3", 1, 0, '"echo"'),
    (False, AUX, "aux/1", 2, 0, '"V"'),
    (False, AUX, "aux/2", 3, 0, '"prm_proof"'),
    (False, AUX, "aux/2", 1, 0, '"N"'),
    (False, AUX, "aux/3", 1, 0, '"mod_proof"'),
    (False, AUX, "aux/3", 2, 0, '"echo"'),
    *[(False, AUX, "aux/3", i, j, f) for (i, j), f in zip(
        [(1, 2), (1, 3), (2, 1), (2, 3), (3, 1), (3, 2)],
        ['"sigma"', '"z1"', '"w2"', '"T"', '"v"', '"P"'], strict=True)],
    (True, RF, "refresh/1", 2, 0, '"V"'),
    (True, RF, "refresh/2", 1, 0, '"F"'),
    (True, RF, "refresh/3", 3, 0, '"z"'),
    (True, AUX2, "aux/3", 3, 1, '"z2"'),
]


@pytest.mark.parametrize(("refreshed", "session", "rnd", "sender", "recipient", "field"),
                         PROOF_FLIPS)
def test_flipped_payload_byte_is_rejected(ceremony: Ceremony, tmp_path: Path, refreshed: bool,
                                          session: int, rnd: str, sender: int, recipient: int,
                                          field: str) -> None:
    doc = _doc(ceremony, refreshed=refreshed)
    n = _find(doc, session, rnd, sender, recipient)
    msg = doc["sessions"][session]["messages"][n]
    msg["body"] = _flip_after(msg["body"], field)
    err = _rejected(tmp_path, doc)
    assert (err.session, err.message, err.party) == (session, n, sender)
    assert "signature does not verify" in str(err)


@pytest.mark.parametrize(("session", "rnd", "sender", "recipient", "what"), [
    (KG, "keygen/1", 3, 0, "signature"),
    (AUX, "aux/3", 2, 0, "signature"),
    (AUX, "aux/3", 1, 3, "signature"),
    (KG, "keygen/2", 2, 0, "session_id"),
    (AUX, "aux/3", 3, 2, "session_id"),
    (AUX, "aux/2", 1, 0, "body_anywhere"),
])
def test_flipped_envelope_byte_is_rejected(ceremony: Ceremony, tmp_path: Path, session: int,
                                           rnd: str, sender: int, recipient: int,
                                           what: str) -> None:
    doc = _doc(ceremony)
    n = _find(doc, session, rnd, sender, recipient)
    msg = doc["sessions"][session]["messages"][n]
    if what == "body_anywhere":  # a byte in the middle of the payload, whatever it is
        body = bytearray.fromhex(msg["body"])
        body[len(body) // 2] ^= 0x40
        msg["body"] = body.hex()
    else:
        msg[what] = _flip_hex(msg[what], 17)
    err = _rejected(tmp_path, doc)
    assert (err.session, err.message) == (session, n)


@pytest.mark.parametrize(("session", "field"), [
    (KG, "session_id"), (AUX, "session_id"), (KG, "nonce"), (AUX, "nonce"),
])
def test_flipped_session_field_is_rejected(ceremony: Ceremony, tmp_path: Path, session: int,
                                           field: str) -> None:
    doc = _doc(ceremony)
    s = doc["sessions"][session]
    s[field] = _flip_hex(s[field], 5)
    err = _rejected(tmp_path, doc)
    assert err.session == session
    # A changed session id orphans every message; a changed nonce breaks the recomputation.
    expected = "message of another session" if field == "session_id" else "session id is not"
    assert expected in str(err)


@pytest.mark.parametrize("field", ["key_id", "public_key"])
def test_flipped_key_is_rejected(ceremony: Ceremony, tmp_path: Path, field: str) -> None:
    doc = _doc(ceremony)
    doc[field] = _flip_hex(doc[field], 40)
    assert "not the one its keygen produced" in str(_rejected(tmp_path, doc))


def test_other_threshold_is_rejected(ceremony: Ceremony, tmp_path: Path) -> None:
    doc = _doc(ceremony)
    doc["cluster"]["threshold"] = 3
    assert "threshold 3" in str(_rejected(tmp_path, doc))


def test_modified_identity_key_is_rejected(ceremony: Ceremony, tmp_path: Path) -> None:
    doc = _doc(ceremony)
    nodes = doc["cluster"]["nodes"]
    nodes["2"]["signing_key"] = nodes["1"]["signing_key"]
    err = _rejected(tmp_path, doc)
    assert (err.session, err.party) == (KG, 2)
    assert "signature does not verify" in str(err)


# --- dropped, duplicated, moved, misattributed ------------------------------------------------


def test_dropped_broadcast_is_rejected(ceremony: Ceremony, tmp_path: Path) -> None:
    doc = _doc(ceremony)
    del doc["sessions"][KG]["messages"][_find(doc, KG, "keygen/2", 3)]
    err = _rejected(tmp_path, doc)
    assert (err.session, err.party) == (KG, 3)
    assert "no 'keygen/2' broadcast" in str(err)


def test_dropped_fac_proof_is_rejected(ceremony: Ceremony, tmp_path: Path) -> None:
    doc = _doc(ceremony)
    del doc["sessions"][AUX]["messages"][_find(doc, AUX, "aux/3", 2, 3)]
    err = _rejected(tmp_path, doc)
    assert (err.session, err.party) == (AUX, 2)
    assert "no disclosed 'aux/3' message to party 3" in str(err)


def test_dropped_aux_info_session_is_rejected(ceremony: Ceremony, tmp_path: Path) -> None:
    doc = _doc(ceremony)
    del doc["sessions"][AUX]
    assert "no aux-info session" in str(_rejected(tmp_path, doc))


@pytest.mark.parametrize(("protocol", "reason"), [
    ("redistribute", "sessions[1].protocol: unknown protocol 'redistribute'"),
    ("presign", "session 1 (presign): not a ceremony protocol"),
])
def test_unknown_or_non_ceremony_protocol_is_rejected(ceremony: Ceremony, tmp_path: Path,
                                                      protocol: str, reason: str) -> None:
    doc = _doc(ceremony)
    doc["sessions"][AUX]["protocol"] = protocol
    err = _rejected(tmp_path, doc)
    assert reason in str(err)


def test_duplicated_message_is_rejected(ceremony: Ceremony, tmp_path: Path) -> None:
    doc = _doc(ceremony)
    msgs = doc["sessions"][AUX]["messages"]
    msgs.append(dict(msgs[_find(doc, AUX, "aux/3", 3, 1)]))
    err = _rejected(tmp_path, doc)
    assert (err.session, err.message, err.party) == (AUX, len(msgs) - 1, 3)
    assert "duplicate" in str(err)


def test_duplicated_session_is_rejected(ceremony: Ceremony, tmp_path: Path) -> None:
    doc = _doc(ceremony)
    doc["sessions"].append(doc["sessions"][AUX])
    err = _rejected(tmp_path, doc)
    assert err.session == 2 and "repeats session 1" in str(err)


def test_message_moved_to_another_session_is_rejected(ceremony: Ceremony,
                                                      tmp_path: Path) -> None:
    # The second aux-info run's Π^fac 1→2 swapped for the first run's: validly signed.
    doc = _doc(ceremony, refreshed=True)
    n = _find(doc, AUX2, "aux/3", 1, 2)
    doc["sessions"][AUX2]["messages"][n] = doc["sessions"][AUX]["messages"][
        _find(doc, AUX, "aux/3", 1, 2)]
    err = _rejected(tmp_path, doc)
    assert (err.session, err.message, err.party) == (AUX2, n, 1)
    assert "message of another session" in str(err)


def test_message_with_its_session_id_rewritten_is_rejected(ceremony: Ceremony,
                                                           tmp_path: Path) -> None:
    doc = _doc(ceremony, refreshed=True)
    n = _find(doc, AUX2, "aux/2", 2)
    moved = dict(doc["sessions"][AUX]["messages"][_find(doc, AUX, "aux/2", 2)])
    moved["session_id"] = doc["sessions"][AUX2]["session_id"]
    doc["sessions"][AUX2]["messages"][n] = moved
    err = _rejected(tmp_path, doc)
    assert (err.session, err.message) == (AUX2, n)
    assert "signature does not verify" in str(err)


def test_message_attributed_to_another_sender_is_rejected(ceremony: Ceremony,
                                                          tmp_path: Path) -> None:
    doc = _doc(ceremony)
    msgs = doc["sessions"][KG]["messages"]
    mine, theirs = _find(doc, KG, "keygen/3", 1), _find(doc, KG, "keygen/3", 2)
    msgs[theirs] = dict(msgs[mine], sender=2)
    err = _rejected(tmp_path, doc)
    assert (err.session, err.message, err.party) == (KG, theirs, 2)
    assert "signature does not verify" in str(err)


# --- malicious nodes: validly signed, publicly wrong ------------------------------------------


def _resign(c: Ceremony, doc: Doc, session: int, n: int, payload: Any) -> None:
    """Replace message n's payload and sign it as its sender would (TEST ONLY keys)."""
    m = doc["sessions"][session]["messages"][n]
    sid, body = bytes.fromhex(m["session_id"]), codec.to_bytes(payload)
    sender, recipient = c.keys[m["sender"]], m["recipient"]
    if recipient == envelope.BROADCAST:
        sig = envelope.seal_broadcast(sender, sid, m["round"], body).signature
    else:
        env = envelope.seal_direct(sender, c.keys[recipient].public, sid, m["round"], body)
        sig = envelope.open_envelope(c.keys[recipient], {m["sender"]: sender.public}, sid,
                                     m["round"], env).inner_signature
    m["body"], m["signature"] = body.hex(), sig.hex()


def _payload(doc: Doc, session: int, n: int, cls: type) -> Any:
    return codec.from_bytes(cls, bytes.fromhex(doc["sessions"][session]["messages"][n]["body"]))


Tamper = Callable[[Any], Any]
MALICIOUS: list[tuple[int, str, int, int, type, Tamper, str]] = [
    (KG, "keygen/3", 2, 0, keygen.Msg3,
     lambda m: dataclasses.replace(m, proof=dataclasses.replace(m.proof, z=m.proof.z ^ 1)),
     "Π^sch proof rejected: z·G != A + e·X"),
    (KG, "keygen/2", 3, 0, keygen.Msg2,
     lambda m: dataclasses.replace(m, decommitment=dataclasses.replace(
         m.decommitment, chain_code=bytes(32))),
     "decommitment does not open the round-1 commitment"),
    (KG, "keygen/2", 1, 0, keygen.Msg2,
     lambda m: dataclasses.replace(m, echo=bytes(32)),
     "broadcast inconsistency"),
    (AUX, "aux/2", 2, 0, aux_info.Msg2,
     lambda m: dataclasses.replace(m, opening=bytes(32)),
     "decommitment does not open the round-1 commitment"),
    (AUX, "aux/3", 1, 0, aux_info.Msg3,
     lambda m: dataclasses.replace(m, mod_proof=dataclasses.replace(
         m.mod_proof, w=m.mod_proof.w + 1)),
     "Π^mod proof rejected"),
    (AUX, "aux/3", 3, 2, aux_info.Direct3,
     lambda m: dataclasses.replace(m, fac_proof=dataclasses.replace(
         m.fac_proof, v=m.fac_proof.v + 1)),
     "Π^fac proof rejected: Q^z1·t^v != T·R^e"),
]


@pytest.mark.parametrize(("session", "rnd", "sender", "recipient", "cls", "tamper", "reason"),
                         MALICIOUS)
def test_malicious_node_is_named(ceremony: Ceremony, tmp_path: Path, session: int, rnd: str,
                                 sender: int, recipient: int, cls: type, tamper: Tamper,
                                 reason: str) -> None:
    doc = _doc(ceremony)
    n = _find(doc, session, rnd, sender, recipient)
    _resign(ceremony, doc, session, n, tamper(_payload(doc, session, n, cls)))
    err = _rejected(tmp_path, doc)
    assert (err.session, err.party) == (session, sender)
    assert "audit failed" in str(err) and reason in str(err)


def test_replayed_schnorr_proof_is_named(ceremony: Ceremony, tmp_path: Path) -> None:
    """Party 3 re-broadcasts party 1's Π^sch as its own, under its own signature."""
    doc = _doc(ceremony)
    src, dst = _find(doc, KG, "keygen/3", 1), _find(doc, KG, "keygen/3", 3)
    _resign(ceremony, doc, KG, dst, _payload(doc, KG, src, keygen.Msg3))
    err = _rejected(tmp_path, doc)
    assert (err.session, err.party) == (KG, 3)
    assert "Schnorr commitment differs from the committed one" in str(err)


def test_malicious_refresh_proof_is_named(ceremony: Ceremony, tmp_path: Path) -> None:
    doc = _doc(ceremony, refreshed=True)
    n = _find(doc, RF, "refresh/3", 1)
    m = _payload(doc, RF, n, refresh.Msg3)
    _resign(ceremony, doc, RF, n, dataclasses.replace(
        m, proof=dataclasses.replace(m.proof, z=(m.proof.z + 1))))
    err = _rejected(tmp_path, doc)
    assert (err.session, err.party) == (RF, 1)
    assert "Π^sch proof rejected" in str(err)


def test_disclosed_secret_share_is_rejected(ceremony: Ceremony, tmp_path: Path) -> None:
    """A VSS share must never appear, even correctly signed by its sender."""
    doc = _doc(ceremony)
    msgs = doc["sessions"][KG]["messages"]
    msgs.append(dict(msgs[_find(doc, KG, "keygen/2", 1)], recipient=2))
    _resign(ceremony, doc, KG, len(msgs) - 1, keygen.Share2(5))
    err = _rejected(tmp_path, doc)
    assert (err.session, err.message, err.party) == (KG, len(msgs) - 1, 1)
    assert "secret direct message" in str(err)


# --- results ----------------------------------------------------------------------------------


def test_modified_keygen_result_is_rejected(ceremony: Ceremony, tmp_path: Path) -> None:
    doc = _doc(ceremony)
    res = codec.from_bytes(KeygenResult, doc["sessions"][KG]["results"]["2"].encode())
    doc["sessions"][KG]["results"]["2"] = codec.to_bytes(
        dataclasses.replace(res, chain_code=bytes(32))).decode()
    err = _rejected(tmp_path, doc)
    assert (err.session, err.party) == (KG, 2)
    assert "reported result" in str(err)


def test_modified_aux_result_is_rejected(ceremony: Ceremony, tmp_path: Path) -> None:
    doc = _doc(ceremony)
    other = AuxResult(ceremony.key.key_id, bytes(32))
    for i in ("1", "2", "3"):  # every node agrees on a digest the proofs do not give
        doc["sessions"][AUX]["results"][i] = codec.to_bytes(other).decode()
    err = _rejected(tmp_path, doc)
    assert (err.session, err.party) == (AUX, 1)
    assert "reported result" in str(err)


def test_missing_result_is_rejected(ceremony: Ceremony, tmp_path: Path) -> None:
    doc = _doc(ceremony)
    del doc["sessions"][KG]["results"]["3"]
    err = _rejected(tmp_path, doc)
    assert (err.session, err.party) == (KG, 3)


# --- strict parsing ---------------------------------------------------------------------------


def test_unknown_field_is_rejected(ceremony: Ceremony, tmp_path: Path) -> None:
    doc = _doc(ceremony)
    doc["sessions"][KG]["messages"][0]["note"] = "x"
    assert "unknown fields ['note']" in str(_rejected(tmp_path, doc))


def test_duplicate_json_key_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "dup.json"
    path.write_text('{"format": "x", "format": "y"}')
    with pytest.raises(TranscriptError, match="duplicate JSON key 'format'"):
        transcript.load(path)


# --- the closing record and the cluster ---------------------------------------------------------


def test_a_transcript_without_its_closing_record_is_rejected(ceremony: Ceremony,
                                                             tmp_path: Path) -> None:
    doc = _doc(ceremony)
    doc["closing"] = None
    assert "no closing record" in str(_rejected(tmp_path, doc))


def test_a_transcript_cut_short_is_rejected(ceremony: Ceremony, tmp_path: Path) -> None:
    doc = _doc(ceremony, refreshed=True)
    del doc["sessions"][AUX2]  # what is left verifies session by session
    err = _rejected(tmp_path, doc)
    assert "the nodes signed 4 sessions, the transcript holds 3" in str(err)
    assert "cut short or reordered" in str(err)


def test_a_cut_transcript_with_a_cut_closing_list_is_rejected(ceremony: Ceremony,
                                                               tmp_path: Path) -> None:
    doc = _doc(ceremony, refreshed=True)
    del doc["sessions"][AUX2]
    del doc["closing"]["sessions"][AUX2]  # the nodes signed the full list
    err = _rejected(tmp_path, doc)
    assert "party 1's closing signature does not verify" in str(err)


def test_reordered_sessions_are_rejected(ceremony: Ceremony, tmp_path: Path) -> None:
    doc = _doc(ceremony, refreshed=True)
    sessions = doc["sessions"]
    sessions[AUX], sessions[AUX2] = sessions[AUX2], sessions[AUX]
    assert "params.epoch 1 is not the epoch" in str(_rejected(tmp_path, doc))
    for s in sessions:  # a transcript without epochs: the closing record still catches it
        del s["params"]["epoch"]
    err = _rejected(tmp_path, doc)
    assert "differ from session 1 on (cut short or reordered)" in str(err)


def test_a_missing_closing_signature_is_rejected(ceremony: Ceremony, tmp_path: Path) -> None:
    doc = _doc(ceremony)
    del doc["closing"]["signatures"]["3"]
    assert "party 3 did not sign the closing record" in str(_rejected(tmp_path, doc))


def _with_new_identity(c: Ceremony, party: int, *, refreshed: bool = False,
                       from_session: int = 0) -> tuple[Doc, IdentityKeys]:
    """The transcript with ``party`` given a fresh identity key from session
    ``from_session`` on: every message of that party there, and its closing signature,
    signed anew with it (as a forger does it, or a node restored on a new host)."""
    doc = _doc(c, refreshed=refreshed)
    fake = IdentityKeys.generate(party)
    keys = {**c.keys, party: fake}
    if from_session == 0:
        doc["cluster"]["nodes"][str(party)] = {"signing_key": fake.public.signing_key.hex(),
                                               "kex_key": fake.public.kex_key.hex()}
    for session in doc["sessions"][from_session:]:
        for m in session["messages"]:
            if m["sender"] != party:
                continue
            sid, body = bytes.fromhex(m["session_id"]), bytes.fromhex(m["body"])
            if m["recipient"] == envelope.BROADCAST:
                sig = envelope.seal_broadcast(fake, sid, m["round"], body).signature
            else:
                reader = keys[m["recipient"]]
                env = envelope.seal_direct(fake, reader.public, sid, m["round"], body)
                sig = envelope.open_envelope(reader, {party: fake.public}, sid, m["round"],
                                             env).inner_signature
            m["signature"] = sig.hex()
    refs = [ceremony_closing.SessionRef(p, bytes.fromhex(sid))
            for p, sid in doc["closing"]["sessions"]]
    doc["closing"]["signatures"][str(party)] = ceremony_closing.sign(
        fake, bytes.fromhex(doc["key_id"]), refs).hex()
    return doc, fake


def test_a_replaced_identity_verifies_alone_but_not_against_the_cluster(
        ceremony: Ceremony, tmp_path: Path) -> None:
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(_with_new_identity(ceremony, 2)[0]))
    forged = transcript.load(path)
    proved = verify(forged)  # self-consistent: only the cluster's own keys tell
    with pytest.raises(TranscriptError) as exc:
        check_cluster(forged, proved, ceremony.cluster)
    assert exc.value.party == 2
    assert "node 2's identity key in the transcript" in str(exc.value)
    assert ceremony.cluster.nodes[2].identity.fingerprint in str(exc.value)
    check_cluster(ceremony.initial, verify(ceremony.initial), ceremony.cluster)


def test_another_threshold_or_node_set_than_the_cluster_is_rejected(ceremony: Ceremony
                                                                     ) -> None:
    proved = verify(ceremony.initial)
    other_t = dataclasses.replace(ceremony.cluster, threshold=3)
    with pytest.raises(TranscriptError, match=r"the key's threshold is 2, .* says 3"):
        check_cluster(ceremony.initial, proved, other_t)
    fewer = dataclasses.replace(ceremony.cluster, nodes={
        i: e for i, e in ceremony.cluster.nodes.items() if i != 3})
    with pytest.raises(TranscriptError, match="node 3 of the transcript is not in"):
        check_cluster(ceremony.initial, proved, fewer)


# --- identity changes (a node restored on a new host) ------------------------------------------


def _change(c: Ceremony, node: int, new: IdentityKeys, *, old: IdentityPublic | None = None,
            cluster: str | None = None) -> ic.IdentityChange:
    return ic.IdentityChange(cluster or c.cluster.name, node,
                             old or c.cluster.nodes[node].identity, new.public,
                             "127.0.0.1:7999", b"-----BEGIN CERTIFICATE-----\n", "restore")


def _record(c: Ceremony, change: ic.IdentityChange, before: int,
            admins: tuple[str, ...] = ("admin1", "admin3")) -> Doc:
    sigs = [ic.sign_change(change, c.admin_keys[a], a) for a in admins]
    return {"before_session": before, "document": ic.document(change, sigs)}


def _restored(c: Ceremony) -> tuple[Doc, IdentityKeys]:
    """The refreshed transcript as it reads when node 2 was restored on a new host after
    the first aux info: its refresh and second aux info signed with the new key, the
    admin-signed change recorded before the refresh."""
    doc, new = _with_new_identity(c, 2, refreshed=True, from_session=RF)
    doc["identity_changes"] = [_record(c, _change(c, 2, new), RF)]
    return doc, new


def _loaded(tmp_path: Path, doc: Doc) -> Transcript:
    path = tmp_path / "restored.json"
    path.write_text(json.dumps(doc))
    return transcript.load(path)


def test_a_recorded_identity_change_verifies_and_matches_the_changed_cluster(
        ceremony: Ceremony, tmp_path: Path) -> None:
    doc, new = _restored(ceremony)
    t = _loaded(tmp_path, doc)
    proved = verify(t)
    assert (proved.epoch, proved.sessions) == (1, 4)
    assert t.identities[2] == ceremony.cluster.nodes[2].identity  # as the sessions began
    assert t.current_identities[2] == new.public
    changed = dataclasses.replace(ceremony.cluster, nodes={
        **ceremony.cluster.nodes,
        2: dataclasses.replace(ceremony.cluster.nodes[2], identity=new.public)})
    check_cluster(t, proved, changed)
    with pytest.raises(TranscriptError, match="node 2's identity key in the transcript"):
        check_cluster(t, proved, ceremony.cluster)  # the cluster before the change
    assert transcript.load(_written(tmp_path, t)) == t


def _written(tmp_path: Path, t: Transcript) -> Path:
    path = tmp_path / "rewritten.json"
    transcript.write(path, t)
    return path


def test_an_identity_change_without_its_record_is_rejected(ceremony: Ceremony,
                                                            tmp_path: Path) -> None:
    doc, _ = _restored(ceremony)
    doc["identity_changes"] = []
    err = _rejected(tmp_path, doc)
    assert (err.session, err.party) == (RF, 2)
    assert "signature does not verify under the sender's identity key" in str(err)


@pytest.mark.parametrize(("before", "session"), [(AUX, AUX), (AUX2, RF)])
def test_a_change_recorded_at_another_place_is_rejected(ceremony: Ceremony, tmp_path: Path,
                                                        before: int, session: int) -> None:
    doc, _ = _restored(ceremony)
    doc["identity_changes"][0]["before_session"] = before
    err = _rejected(tmp_path, doc)
    assert (err.session, err.party) == (session, 2)  # signed under the other key
    assert "signature does not verify" in str(err)


@pytest.mark.parametrize("before", [0, 5])
def test_a_change_before_the_keygen_or_after_the_end_is_rejected(
        ceremony: Ceremony, tmp_path: Path, before: int) -> None:
    doc, _ = _restored(ceremony)
    doc["identity_changes"][0]["before_session"] = before
    assert "not in session order, or before the keygen" in str(_rejected(tmp_path, doc))


@pytest.mark.parametrize(("admins", "reason"), [
    (("admin1",), "has 1 of the 2 admin signatures required"),
    (("admin1", "admin1"), '"admin1" signed more than once'),
])
def test_a_change_without_the_admin_quorum_is_rejected(ceremony: Ceremony, tmp_path: Path,
                                                       admins: tuple[str, ...],
                                                       reason: str) -> None:
    doc, new = _restored(ceremony)
    doc["identity_changes"] = [_record(ceremony, _change(ceremony, 2, new), RF, admins)]
    err = _rejected(tmp_path, doc)
    assert (err.session, err.party) == (RF, 2)
    assert "identity_changes[0] (node 2, before session 2)" in str(err) and reason in str(err)


def test_a_signature_of_a_stranger_or_over_another_change_does_not_count(
        ceremony: Ceremony, tmp_path: Path) -> None:
    doc, new = _restored(ceremony)
    change = _change(ceremony, 2, new)
    other = dataclasses.replace(change, address="10.0.0.9:7002")
    stranger = ic.sign_change(change, Ed25519PrivateKey.generate(), "admin2")
    sigs = [ic.sign_change(change, ceremony.admin_keys["admin1"], "admin1"), stranger,
            ic.sign_change(other, ceremony.admin_keys["admin3"], "admin3")]
    doc["identity_changes"][0]["document"] = ic.document(change, sigs)
    err = str(_rejected(tmp_path, doc))
    assert "has 1 of the 2 admin signatures required" in err
    assert 'the signature of "admin2" is not over this change' in err
    assert 'the signature of "admin3" is not over this change' in err


def test_a_change_whose_new_key_was_edited_after_signing_is_rejected(
        ceremony: Ceremony, tmp_path: Path) -> None:
    doc, _ = _restored(ceremony)
    forger = IdentityKeys.generate(2)  # the admins signed the change to `new`
    doc["identity_changes"][0]["document"]["change"]["new_signing_key"] = \
        forger.public.signing_key.hex()
    assert "has 0 of the 2 admin signatures" in str(_rejected(tmp_path, doc))


def test_a_change_from_another_identity_or_cluster_is_rejected(ceremony: Ceremony,
                                                              tmp_path: Path) -> None:
    doc, new = _restored(ceremony)
    stale = IdentityKeys.generate(2).public  # not what node 2 held before the refresh
    doc["identity_changes"] = [_record(ceremony, _change(ceremony, 2, new, old=stale), RF)]
    assert "is not the change's old identity" in str(_rejected(tmp_path, doc))
    doc["identity_changes"] = [_record(ceremony, _change(ceremony, 2, new, cluster="other"),
                                       RF)]
    assert "the change is for cluster 'other'" in str(_rejected(tmp_path, doc))


def test_a_change_applied_twice_is_rejected(ceremony: Ceremony, tmp_path: Path) -> None:
    doc, _ = _restored(ceremony)
    doc["identity_changes"].append(doc["identity_changes"][0])
    err = _rejected(tmp_path, doc)
    assert err.party == 2 and "identity_changes[1]" in str(err)
    assert "is not the change's old identity" in str(err)


def test_a_change_to_another_nodes_key_is_rejected(ceremony: Ceremony, tmp_path: Path) -> None:
    doc, _ = _restored(ceremony)
    doc["identity_changes"] = [_record(ceremony, _change(ceremony, 2, ceremony.keys[3]), RF)]
    assert "the new identity reuses a key of node 3" in str(_rejected(tmp_path, doc))


def test_admins_of_its_own_verify_alone_but_not_against_the_cluster(
        ceremony: Ceremony, tmp_path: Path) -> None:
    """A forger who names its own admins: only cluster.toml's admins tell."""
    doc, new = _restored(ceremony)
    mallory = Ed25519PrivateKey.generate()
    doc["cluster"]["admins"] = {"mallory": mallory.public_key().public_bytes_raw().hex()}
    doc["cluster"]["admin_quorum"] = 1
    change = _change(ceremony, 2, new)
    doc["identity_changes"][0]["document"] = ic.document(
        change, [ic.sign_change(change, mallory, "mallory")])
    t = _loaded(tmp_path, doc)
    proved = verify(t)
    changed = dataclasses.replace(ceremony.cluster, nodes={
        **ceremony.cluster.nodes,
        2: dataclasses.replace(ceremony.cluster.nodes[2], identity=new.public)})
    with pytest.raises(TranscriptError, match="admins or admin quorum"):
        check_cluster(t, proved, changed)


def test_a_transcript_written_before_identity_changes_verifies(ceremony: Ceremony,
                                                               tmp_path: Path) -> None:
    """Format v2: no admins, no identity changes; read and verified as before."""
    doc = _doc(ceremony, refreshed=True)
    assert doc["format"] == transcript.FORMAT and doc["identity_changes"] == []
    doc["format"] = transcript.FORMAT_V2
    del doc["cluster"]["admins"], doc["cluster"]["admin_quorum"], doc["identity_changes"]
    t = _loaded(tmp_path, doc)
    assert (t.admins, t.identity_changes) == ({}, ())
    check_cluster(t, verify(t), ceremony.cluster)
    doc["identity_changes"] = []  # a v2 document has no such field
    assert "unknown fields ['identity_changes']" in str(_rejected(tmp_path, doc))


def test_a_v2_transcript_extended_after_a_restore_takes_the_clusters_admins(
        ceremony: Ceremony, tmp_path: Path) -> None:
    """A key whose transcript was written before identity changes were recorded: the next
    refresh after a restore records the applied change, checked by cluster.toml's admins."""
    doc = _doc(ceremony, refreshed=True)
    doc["format"] = transcript.FORMAT_V2
    del doc["cluster"]["admins"], doc["cluster"]["admin_quorum"], doc["identity_changes"]
    prior = _loaded(tmp_path, doc)
    new = IdentityKeys.generate(2)
    change = _change(ceremony, 2, new)
    changed = dataclasses.replace(ceremony.cluster, nodes={
        **ceremony.cluster.nodes,
        2: dataclasses.replace(ceremony.cluster.nodes[2], identity=new.public)})
    with pytest.raises(TranscriptError, match="no applied identity change leads node 2"):
        transcript.extend(prior, changed, [], 2, [])
    signatures = tuple(ic.sign_change(change, ceremony.admin_keys[a], a)
                       for a in ("admin2", "admin3"))
    t = transcript.extend(prior, changed, [], 2, [(change, signatures)])
    assert (t.admins, t.admin_quorum) == (ceremony.cluster.admins, 2)
    assert [(r.before_session, r.change) for r in t.identity_changes] == [(4, change)]
    assert t.identities == prior.identities and t.current_identities[2] == new.public
    assert identities_in_force(t)[-1][2] == new.public
    one = transcript.extend(prior, changed, [], 2, [(change, signatures[:1])])
    with pytest.raises(TranscriptError, match="has 1 of the 2 admin signatures"):
        identities_in_force(one)
