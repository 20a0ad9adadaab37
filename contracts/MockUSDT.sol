// SPDX-License-Identifier: MIT
pragma solidity 0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title Mock USDT for development and test chains
/// @notice 18 decimals, like Binance-Peg BSC-USD. Anyone may mint with `faucet`, but only on
///         chains that are not BSC mainnet (56) or Ethereum mainnet (1).
contract MockUSDT is ERC20 {
    error FaucetDisabled(uint256 chainId);

    constructor() ERC20("Tether USD (Open Pay mock)", "USDT") {}

    function faucet(address to, uint256 amount) external {
        if (block.chainid == 56 || block.chainid == 1) revert FaucetDisabled(block.chainid);
        _mint(to, amount);
    }
}
