"""The signer-only demo end to end (real node processes): a 2-of-3 ceremony whose closed
transcript verifies offline, then two policy-checked Ethereum transfers signed by the
nodes. It is the quick guard for what `oms demo` (slow-marked) also does first."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from coordinator import ceremony_transcript as transcript
from coordinator.transcript_verify import verify


def test_the_signer_demo_closes_and_verifies_its_transcript_and_signs(tmp_path: Path) -> None:
    cluster = tmp_path / "cluster"
    r = subprocess.run([sys.executable, "-m", "oms_core.demo.signer_demo", "--json",
                        "--dir", str(cluster)],
                       capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert len(result["transactions"]) == 2
    assert all(tx["raw"].startswith("0x02") for tx in result["transactions"])
    closed = transcript.load(Path(result["transcript"]))
    assert closed.closing is not None  # every node signed the list of its ceremony sessions
    checked = verify(closed)
    assert checked.threshold == 2 and checked.parties == (1, 2, 3)
