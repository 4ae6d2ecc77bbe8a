// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

/// @title AuditAnchor — the OMS's audit tree heads, kept where the OMS host cannot undo them.
/// @notice Whoever holds the OMS database can rewrite its audit log and delete its signed tree
///         heads; an event in a mined block it cannot. Only the owner (the OMS's anchor
///         account, which holds gas and nothing else) may anchor, so nobody else can fill the
///         auditor's view with roots of a log that never existed. The contract stores nothing:
///         auditors read the events with eth_getLogs.
contract AuditAnchor {
    /// @dev Storage, not immutable: the deployed code is then the same for every owner, so an
    ///      auditor can compare it byte for byte with the committed artifact.
    address public owner;

    /// @param logId keccak256 of the audit log's id (its text, UTF-8)
    /// @param treeSize number of entries the root covers
    /// @param root RFC 6962 Merkle tree hash of the first treeSize entries
    event Anchored(bytes32 indexed logId, uint64 treeSize, bytes32 root);

    constructor() {
        owner = msg.sender;
    }

    function anchor(bytes32 logId, uint64 treeSize, bytes32 root) external {
        require(msg.sender == owner, "AuditAnchor: not the owner");
        require(treeSize > 0, "AuditAnchor: empty tree");
        emit Anchored(logId, treeSize, root);
    }
}
