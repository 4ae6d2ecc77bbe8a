"""Solidity test contracts (an ERC-20 token and a constant-product pool) for the embedded
chain, anvil and the demo: sources here, solc output in ``artifacts/`` (see build.py)."""
