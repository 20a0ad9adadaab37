// SPDX-License-Identifier: MIT
pragma solidity 0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @notice Chainlink's feed interface, so explorers and contracts read this feed like any other.
interface AggregatorV3Interface {
    function decimals() external view returns (uint8);
    function description() external view returns (string memory);
    function version() external view returns (uint256);
    function getRoundData(uint80 roundId)
        external
        view
        returns (uint80 roundId_, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);
    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);
}

/// @title USDT/LKR rate feed
/// @notice LKR per 1 USDT with 8 decimals (300.50 LKR = 30050000000), posted by a REPORTER (the
///         node's rate job). Every payment's `rate` can be checked against this feed's history.
/// @dev A post is rejected when the answer is not positive, when its observation time is in the
///      future, not newer than the latest round, or older than `maxAge` seconds.
contract OpenPayRateOracle is AccessControl, AggregatorV3Interface {
    bytes32 public constant REPORTER_ROLE = keccak256("REPORTER_ROLE");

    struct Round {
        int192 answer;
        uint64 updatedAt;
    }

    string private _description;
    uint80 public latestRound;
    uint64 public maxAge;
    mapping(uint80 roundId => Round) private _rounds;

    event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);
    event NewRound(uint256 indexed roundId, address indexed startedBy, uint256 startedAt);
    event MaxAgeSet(uint256 maxAge);

    error InvalidAnswer(int256 answer);
    error StaleAnswer(uint256 observedAt, uint256 latestUpdatedAt);
    error FutureAnswer(uint256 observedAt);
    error NoDataPresent();
    error ZeroAddress();

    constructor(address admin, string memory description_, uint64 maxAge_) {
        if (admin == address(0)) revert ZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _description = description_;
        maxAge = maxAge_;
    }

    /// @notice Posts a new round: `answer` observed at `observedAt` (unix seconds).
    function postAnswer(int256 answer, uint64 observedAt) external onlyRole(REPORTER_ROLE) returns (uint80 roundId) {
        if (answer <= 0 || answer > type(int192).max) revert InvalidAnswer(answer);
        if (observedAt > block.timestamp) revert FutureAnswer(observedAt);
        uint80 latest = latestRound;
        uint64 latestUpdatedAt = _rounds[latest].updatedAt;
        if (observedAt <= latestUpdatedAt || observedAt + maxAge < block.timestamp) {
            revert StaleAnswer(observedAt, latestUpdatedAt);
        }
        roundId = latest + 1;
        latestRound = roundId;
        _rounds[roundId] = Round({answer: int192(answer), updatedAt: observedAt});
        emit NewRound(roundId, msg.sender, observedAt);
        emit AnswerUpdated(answer, roundId, observedAt);
    }

    function setMaxAge(uint64 maxAge_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        maxAge = maxAge_;
        emit MaxAgeSet(maxAge_);
    }

    function decimals() external pure returns (uint8) {
        return 8;
    }

    function description() external view returns (string memory) {
        return _description;
    }

    function version() external pure returns (uint256) {
        return 1;
    }

    function getRoundData(uint80 roundId) public view returns (uint80, int256, uint256, uint256, uint80) {
        Round memory round = _rounds[roundId];
        if (round.updatedAt == 0) revert NoDataPresent();
        return (roundId, round.answer, round.updatedAt, round.updatedAt, roundId);
    }

    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80) {
        return getRoundData(latestRound);
    }

    function latestAnswer() external view returns (int256) {
        Round memory round = _rounds[latestRound];
        if (round.updatedAt == 0) revert NoDataPresent();
        return round.answer;
    }

    function latestTimestamp() external view returns (uint256) {
        return _rounds[latestRound].updatedAt;
    }
}
