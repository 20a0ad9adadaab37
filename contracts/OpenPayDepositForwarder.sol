// SPDX-License-Identifier: MIT
pragma solidity 0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @title Deposit address implementation
/// @notice Each payment's deposit address is an EIP-1167 clone of this contract, created by the
///         gateway with CREATE2 (salt = the intent's EIP-712 digest) only when it is swept. Before
///         that the address is empty and simply holds whatever tokens are sent to it.
/// @dev Stateless: the gateway is an immutable of the implementation, so clones need no
///      initialisation and nobody but the gateway can move their tokens.
contract OpenPayDepositForwarder {
    using SafeERC20 for IERC20;

    address public immutable GATEWAY;

    error NotGateway();

    constructor(address gateway) {
        GATEWAY = gateway;
    }

    /// @notice Sends `amount` of `token` held here to the gateway.
    function forward(address token, uint256 amount) external {
        if (msg.sender != GATEWAY) revert NotGateway();
        IERC20(token).safeTransfer(msg.sender, amount);
    }
}
