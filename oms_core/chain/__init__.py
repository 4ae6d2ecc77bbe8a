"""Ethereum: transactions, token call decoding and what a transaction means to the policy."""
