// SPDX-License-Identifier: MIT
pragma solidity 0.8.24;

/// @title Deposit address creation code
/// @notice A payment's deposit address is `CREATE2(gateway, salt = the intent's EIP-712 digest,
///         keccak256(INITCODE))`. Until it is swept the address is an empty account that simply
///         holds whatever tokens are sent to it. To sweep, the gateway writes the token and the
///         amount to forward to transient storage and CREATE2s `INITCODE` there: the constructor
///         reads them back from its creator (`depositContext()`), transfers the amount to its
///         creator and SELFDESTRUCTs. Created and destroyed in the same transaction, the account
///         is deleted again (EIP-6780), so no code is ever deposited (no 200 gas per byte) and
///         the same address can be swept again when more money arrives later.
/// @dev Hand-written (63 bytes) so it is the same for every gateway, token and compiler run:
///      `chain.deposits.DEPOSIT_INITCODE` is the same bytes. Nobody but the gateway can run it at
///      a deposit address: CREATE2 addresses commit to their creator. It trusts its creator
///      (CALLER) for the token and amount and always pays CALLER; a failed token transfer (call
///      failed, or returned data that is not `true`) reverts, so the gateway's CREATE2 fails.
///
///         63 e76f4ffc       PUSH4 depositContext()
///         5f 52             PUSH0 MSTORE                 mem[28..32) = selector
///         60 40 60 20       PUSH1 64 PUSH1 32            out: mem[32..96) = (token, amount)
///         60 04 60 1c       PUSH1 4 PUSH1 28             in: mem[28..32)
///         33 5a fa          CALLER GAS STATICCALL        [ok1]
///         60 20 51          PUSH1 32 MLOAD               [ok1, token]
///         33 60 20 52       CALLER PUSH1 32 MSTORE       mem[32..64) = creator (amount stays at 64)
///         63 a9059cbb 5f 52 PUSH4 transfer PUSH0 MSTORE  mem[28..32) = transfer(address,uint256)
///         60 20 5f          PUSH1 32 PUSH0               out: mem[0..32)
///         60 44 60 1c       PUSH1 68 PUSH1 28            in: mem[28..96)
///         5f 85 5a f1       PUSH0 DUP6 GAS CALL          [ok1, token, ok2]
///         3d 15             RETURNDATASIZE ISZERO        no return data (USDT-style) ...
///         5f 51 60 01 14 17 PUSH0 MLOAD PUSH1 1 EQ OR    ... or it returned true
///         16 82 16          AND DUP3 AND                 ok1 && ok2 && returned ok
///         60 3c 57          PUSH1 60 JUMPI
///         5f 5f fd          REVERT(0, 0)
///         5b 33 ff          JUMPDEST CALLER SELFDESTRUCT
library OpenPayDepositForwarder {
    bytes internal constant INITCODE =
        hex"63e76f4ffc5f52604060206004601c335afa6020513360205263a9059cbb5f5260205f6044601c5f855af13d155f5160011417168216603c575f5ffd5b33ff";
}
