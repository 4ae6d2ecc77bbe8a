"""The OMS's chain-head metrics against real anvil endpoints: a lagging endpoint shows its
lag in blocks, a stalled one (SIGSTOP) and a stopped one are reported down while their
last head and its age keep showing how far behind they are."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from prometheus_client import CollectorRegistry

from oms_core.chain.web3_endpoint import Web3Endpoint
from oms_core.daemon.observability import ChainHeads
from testing.chain_support import AnvilNode, running_anvil


def mine(node: AnvilNode, blocks: int) -> None:
    node.web3().provider.make_request("anvil_mine", [hex(blocks)])  # type: ignore[arg-type]


@pytest.fixture
def anvils() -> Iterator[tuple[AnvilNode, AnvilNode, ExitStack]]:
    with ExitStack() as stack:
        b_stack = stack.enter_context(ExitStack())
        a = stack.enter_context(running_anvil())
        b = b_stack.enter_context(running_anvil())
        yield a, b, b_stack


def test_lag_stall_and_stop_of_one_endpoint(
        anvils: tuple[AnvilNode, AnvilNode, ExitStack]) -> None:
    a, b, b_stack = anvils
    heads = ChainHeads({"a": Web3Endpoint.http(a.url, "a", timeout=1.0),
                        "b": Web3Endpoint.http(b.url, "b", timeout=1.0)}, timeout=1.5)
    registry = CollectorRegistry()
    registry.register(heads)

    def read(metric: str, endpoint: str) -> float | None:
        # Each read is one scrape (the collector reads the endpoints at collect time).
        return registry.get_sample_value(metric, {"endpoint": endpoint})

    start_a = a.web3().eth.block_number
    start_b = b.web3().eth.block_number
    assert read("oms_chain_head_lag_blocks", "b") == max(start_a, start_b) - start_b
    mine(a, 5 + start_b - start_a)  # a is now 5 blocks ahead of b
    assert read("oms_chain_endpoint_up", "a") == 1 and read("oms_chain_endpoint_up", "b") == 1
    assert read("oms_chain_head_block", "a") == start_b + 5
    assert read("oms_chain_head_lag_blocks", "a") == 0
    assert read("oms_chain_head_lag_blocks", "b") == 5
    b_seen_at = time.monotonic()

    os.kill(b.pid, signal.SIGSTOP)  # stalled: it accepts connections, answers nothing
    try:
        mine(a, 2)
        assert read("oms_chain_endpoint_up", "b") == 0
        assert read("oms_chain_endpoint_up", "a") == 1
        assert read("oms_chain_head_block", "b") == start_b  # its last answer
        assert read("oms_chain_head_lag_blocks", "b") == 7
        unchanged_b = read("oms_chain_head_unchanged_seconds", "b")
        assert unchanged_b is not None and unchanged_b >= time.monotonic() - b_seen_at - 0.01
        unchanged_a = read("oms_chain_head_unchanged_seconds", "a")
        assert unchanged_a is not None and unchanged_a < unchanged_b
    finally:
        os.kill(b.pid, signal.SIGCONT)
    assert read("oms_chain_endpoint_up", "b") == 1  # it answers again

    b_stack.close()  # stopped: the connection is refused
    assert read("oms_chain_endpoint_up", "b") == 0
    assert read("oms_chain_head_lag_blocks", "b") == 7
    assert read("oms_chain_endpoint_up", "a") == 1
