// SPDX-License-Identifier: MIT
pragma solidity 0.8.24;

/// @title Event emitter for indexer benchmarks (never deployed outside dev/test chains)
/// @notice Emits many logs shaped exactly like the gateway's `PaymentReceived` and ERC-20
///         `Transfer`, cheaply, so the indexer can be measured on realistic logs.
contract OpenPayEventEmitter {
    event PaymentReceived(
        bytes32 indexed paymentId,
        bytes32 indexed merchantId,
        address indexed payer,
        address token,
        uint256 amount,
        uint256 fee,
        uint256 fiatAmount,
        uint256 rate
    );
    event Transfer(address indexed from, address indexed to, uint256 value);

    function emitPayments(uint256 count, bytes32 merchantId, address token, uint256 firstId) external {
        for (uint256 i = 0; i < count; ++i) {
            uint256 id = firstId + i;
            emit PaymentReceived(bytes32(id), merchantId, msg.sender, token, 1e18 + i, 1e16, 30_000 + i, 300e8);
        }
    }

    function emitTransfers(uint256 count, address to) external {
        for (uint256 i = 0; i < count; ++i) {
            emit Transfer(msg.sender, to, 1e18 + i);
        }
    }
}
