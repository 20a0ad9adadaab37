// SPDX-License-Identifier: MIT
pragma solidity 0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

interface IOpenPayGateway {
    function creditCollected(bytes32 merchantId, address token, uint256 amount, uint256 fee) external;
    function isTokenAllowed(address token) external view returns (bool);
}

/// @title Open Pay subscriptions
/// @notice A merchant's plan lets the node (OPERATOR) pull at most `maxAmountPerPeriod` once per
///         period from each subscriber's allowance, after an optional trial. Pulled tokens go
///         straight into the gateway and are credited to the merchant there (minus `feeBps`).
/// @dev Periods are counted from the end of the trial: period `k` is
///      `[startAt + k * period, startAt + (k + 1) * period)`. A period that was never charged is
///      skipped, not charged later. `charge` never reverts because of one subscription: each
///      failure emits `ChargeFailed` with a reason code (see `FailureReason`).
contract OpenPaySubscriptions is AccessControl {
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
    uint256 private constant BPS = 10_000;

    enum FailureReason {
        NotActive, // 0: unknown or cancelled subscription
        NotDue, // 1: still in the trial
        AlreadyCharged, // 2: this period was charged
        InvalidAmount, // 3: zero or above the plan's maximum
        TokenNotAllowed, // 4: the gateway no longer accepts the plan's token
        InsufficientAllowance, // 5
        InsufficientBalance, // 6
        TransferFailed // 7: the token refused for another reason
    }

    struct Plan {
        bytes32 merchantId;
        address token;
        uint64 period;
        uint16 feeBps;
        bool active;
        uint64 trialPeriod;
        uint256 maxAmountPerPeriod;
    }

    struct Subscription {
        address subscriber;
        uint64 startAt;
        bool active;
        uint64 planId;
        uint64 nextPeriod;
    }

    IOpenPayGateway public immutable GATEWAY;

    uint256 public planCount;
    uint256 public subscriptionCount;
    mapping(uint256 planId => Plan) private _plans;
    mapping(uint256 subscriptionId => Subscription) private _subscriptions;

    event PlanCreated(
        uint256 indexed planId,
        bytes32 indexed merchantId,
        address indexed token,
        uint256 maxAmountPerPeriod,
        uint256 period,
        uint256 trialPeriod,
        uint256 feeBps
    );
    event PlanActiveSet(uint256 indexed planId, bool active);
    event Subscribed(
        uint256 indexed subscriptionId,
        uint256 indexed planId,
        address indexed subscriber,
        bytes32 merchantId,
        uint256 startAt
    );
    event Charged(
        uint256 indexed subscriptionId,
        uint256 indexed planId,
        bytes32 indexed merchantId,
        address subscriber,
        address token,
        uint256 amount,
        uint256 fee,
        uint256 period
    );
    event ChargeFailed(uint256 indexed subscriptionId, uint256 indexed period, uint8 reason);
    event Cancelled(uint256 indexed subscriptionId, address indexed by);

    error PlanNotActive(uint256 planId);
    error InvalidPlan();
    error InsufficientAllowance(uint256 allowance, uint256 required);
    error SubscriptionNotActive(uint256 subscriptionId);
    error NotAuthorized();
    error LengthMismatch();
    error ZeroAddress();

    constructor(address admin, address gateway) {
        if (admin == address(0) || gateway == address(0)) revert ZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        GATEWAY = IOpenPayGateway(gateway);
    }

    function createPlan(
        bytes32 merchantId,
        address token,
        uint256 maxAmountPerPeriod,
        uint64 period,
        uint64 trialPeriod,
        uint16 feeBps
    ) external onlyRole(OPERATOR_ROLE) returns (uint256 planId) {
        if (maxAmountPerPeriod == 0 || period == 0 || feeBps > BPS) revert InvalidPlan();
        if (token == address(0)) revert ZeroAddress();
        planId = ++planCount;
        _plans[planId] = Plan({
            merchantId: merchantId,
            token: token,
            period: period,
            feeBps: feeBps,
            active: true,
            trialPeriod: trialPeriod,
            maxAmountPerPeriod: maxAmountPerPeriod
        });
        emit PlanCreated(planId, merchantId, token, maxAmountPerPeriod, period, trialPeriod, feeBps);
    }

    /// @notice An inactive plan takes no new subscribers; existing ones are still charged.
    function setPlanActive(uint256 planId, bool active) external onlyRole(OPERATOR_ROLE) {
        if (_plans[planId].period == 0) revert InvalidPlan();
        _plans[planId].active = active;
        emit PlanActiveSet(planId, active);
    }

    /// @notice Subscribes the caller, who must have approved this contract for at least one
    ///         period's maximum of the plan's token.
    function subscribe(uint256 planId) external returns (uint256 subscriptionId) {
        Plan storage plan = _plans[planId];
        if (!plan.active) revert PlanNotActive(planId);
        uint256 allowance = IERC20(plan.token).allowance(msg.sender, address(this));
        if (allowance < plan.maxAmountPerPeriod) revert InsufficientAllowance(allowance, plan.maxAmountPerPeriod);
        subscriptionId = ++subscriptionCount;
        uint64 startAt = uint64(block.timestamp) + plan.trialPeriod;
        _subscriptions[subscriptionId] = Subscription({
            subscriber: msg.sender,
            startAt: startAt,
            active: true,
            planId: uint64(planId),
            nextPeriod: 0
        });
        emit Subscribed(subscriptionId, planId, msg.sender, plan.merchantId, startAt);
    }

    /// @notice Charges each subscription `amounts[i]` for the current period.
    function charge(uint256[] calldata ids, uint256[] calldata amounts) external onlyRole(OPERATOR_ROLE) {
        if (ids.length != amounts.length) revert LengthMismatch();
        for (uint256 i = 0; i < ids.length; ++i) {
            _charge(ids[i], amounts[i]);
        }
    }

    /// @notice Ends a subscription; by its subscriber or by the merchant's operator (the node).
    function cancel(uint256 subscriptionId) external {
        Subscription storage sub = _subscriptions[subscriptionId];
        if (!sub.active) revert SubscriptionNotActive(subscriptionId);
        if (msg.sender != sub.subscriber && !hasRole(OPERATOR_ROLE, msg.sender)) revert NotAuthorized();
        sub.active = false;
        emit Cancelled(subscriptionId, msg.sender);
    }

    function getPlan(uint256 planId) external view returns (Plan memory) {
        return _plans[planId];
    }

    function getSubscription(uint256 subscriptionId) external view returns (Subscription memory) {
        return _subscriptions[subscriptionId];
    }

    /// @notice The period a charge made now would be for (0 during the trial too).
    function currentPeriod(uint256 subscriptionId) public view returns (uint256) {
        Subscription storage sub = _subscriptions[subscriptionId];
        if (block.timestamp < sub.startAt) return 0;
        return (block.timestamp - sub.startAt) / _plans[sub.planId].period;
    }

    function _charge(uint256 id, uint256 amount) private {
        Subscription storage sub = _subscriptions[id];
        if (!sub.active) return _fail(id, 0, FailureReason.NotActive);
        if (block.timestamp < sub.startAt) return _fail(id, 0, FailureReason.NotDue);
        Plan storage plan = _plans[sub.planId];
        uint256 period = (block.timestamp - sub.startAt) / plan.period;
        if (period < sub.nextPeriod) return _fail(id, period, FailureReason.AlreadyCharged);
        if (amount == 0 || amount > plan.maxAmountPerPeriod) return _fail(id, period, FailureReason.InvalidAmount);
        address token = plan.token;
        if (!GATEWAY.isTokenAllowed(token)) return _fail(id, period, FailureReason.TokenNotAllowed);
        address subscriber = sub.subscriber;

        (bool ok, bytes memory data) =
            token.call(abi.encodeCall(IERC20.transferFrom, (subscriber, address(GATEWAY), amount)));
        if (!ok || (data.length != 0 && (data.length < 32 || abi.decode(data, (uint256)) != 1))) {
            return _fail(id, period, _whyPullFailed(token, subscriber, amount));
        }
        sub.nextPeriod = uint64(period + 1);
        uint256 fee = amount * plan.feeBps / BPS;
        bytes32 merchantId = plan.merchantId;
        GATEWAY.creditCollected(merchantId, token, amount, fee);
        emit Charged(id, sub.planId, merchantId, subscriber, token, amount, fee, period);
    }

    function _whyPullFailed(address token, address subscriber, uint256 amount) private view returns (FailureReason) {
        if (IERC20(token).allowance(subscriber, address(this)) < amount) return FailureReason.InsufficientAllowance;
        if (IERC20(token).balanceOf(subscriber) < amount) return FailureReason.InsufficientBalance;
        return FailureReason.TransferFailed;
    }

    function _fail(uint256 id, uint256 period, FailureReason reason) private {
        emit ChargeFailed(id, period, uint8(reason));
    }
}
