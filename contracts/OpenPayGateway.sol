// SPDX-License-Identifier: MIT
pragma solidity 0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {OpenPayDepositForwarder} from "./OpenPayDepositForwarder.sol";

/// @notice What a merchant asks a customer to pay, signed by an OPERATOR key of the node.
/// @dev `merchantId` is a UUID as 32 bytes: the 16 UUID bytes left-padded with zeros
///      (`bytes32(uint256(uint128(uuid)))`). `paymentId` holds the payment's UUID in its low 16
///      bytes and, in its high 16 bytes, a sequence number the node allocates uniquely per gateway
///      (`bytes32(sequence << 128 | uint128(uuid))`); replay protection is per sequence number,
///      so two intents with the same non-zero sequence number cannot both be paid. A zero
///      sequence number is allowed (replay protection per full id, at a higher gas cost). `amount` and `fee` are token base units
///      (USDT on BSC has 18 decimals). `fiatAmount` is LKR cents. `rate` is LKR per 1 USDT as a
///      fixed-point number with 8 decimals (the oracle's format): 300.50 LKR/USDT = 30050000000.
///      `deadline` is a unix timestamp (seconds) after which `pay` rejects the intent.
struct PaymentIntent {
    bytes32 paymentId;
    bytes32 merchantId;
    address token;
    uint256 amount;
    uint256 fee;
    uint256 fiatAmount;
    uint256 rate;
    uint256 deadline;
}

/// @title Open Pay gateway
/// @notice Holds merchants' token balances and the platform treasury. Money only enters through
///         `pay` (a signed intent, pulled with an allowance), `sweep` (a per-payment CREATE2
///         deposit address that any wallet or exchange can send a plain transfer to) and
///         `creditCollected` (subscription charges); it only leaves through `withdraw` (to the
///         merchant's registered payout address), `refund` and `withdrawTreasury`.
/// @dev Invariant, for every token: sum of merchant balances + treasury == token.balanceOf(this),
///      as long as nobody transfers tokens to this contract directly (such stray tokens are not
///      credited to anyone). Tokens must be plain ERC-20s (no fee-on-transfer, no rebasing):
///      only allowlisted tokens are accepted.
contract OpenPayGateway is AccessControl, Pausable, ReentrancyGuardTransient, EIP712 {
    using SafeERC20 for IERC20;

    bytes32 public constant ADMIN_ROLE = DEFAULT_ADMIN_ROLE;
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
    bytes32 public constant TREASURER_ROLE = keccak256("TREASURER_ROLE");
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");
    /// @notice Contracts allowed to credit funds they moved into the gateway (subscriptions).
    bytes32 public constant COLLECTOR_ROLE = keccak256("COLLECTOR_ROLE");

    bytes32 public constant PAYMENT_INTENT_TYPEHASH = keccak256(
        "PaymentIntent(bytes32 paymentId,bytes32 merchantId,address token,uint256 amount,uint256 fee,"
        "uint256 fiatAmount,uint256 rate,uint256 deadline)"
    );

    /// @notice `keccak256(OpenPayDepositForwarder.INITCODE)`: a deposit address is
    ///         `CREATE2(this, hashIntent(intent), DEPOSIT_INITCODE_HASH)`.
    bytes32 public immutable DEPOSIT_INITCODE_HASH;
    /// @dev `OpenPayDepositForwarder.INITCODE` as two words (63 bytes), so a sweep writes it to
    ///      memory with two MSTOREs.
    bytes32 private immutable _INITCODE_0;
    bytes32 private immutable _INITCODE_1;
    uint256 private constant _INITCODE_SIZE = 63;

    /// @dev Transient slots (`keccak256("OpenPayGateway.sweep.token" / ".amount") - 1`) through
    ///      which `_sweep` tells the deposit constructor what to forward (`depositContext`).
    uint256 private constant _SWEEP_TOKEN_SLOT = 0xf7cd9b8db1e549985e2818e937d2422d24cebf50d5a79243b5acb0123158e8e0;
    uint256 private constant _SWEEP_AMOUNT_SLOT = 0xef8dc498ba878621ce35f1493ce3b823ab4370d8eecc33e9a2ff51c49adf5747;

    /// @dev The allowlist flag and the treasury share one slot, so `pay` touches it once.
    struct TokenState {
        bool allowed;
        uint248 treasury;
    }

    mapping(address token => TokenState) private _tokens;
    mapping(bytes32 merchantId => mapping(address token => uint256)) private _balances;
    /// @dev Used payment ids. An id whose high 128 bits hold a sequence number (see
    ///      `PaymentIntent`) is marked in a bitmap, 256 sequence numbers per storage word, like
    ///      Permit2's unordered nonces: consecutive payments then share a slot and `pay` writes a
    ///      non-zero word (2.9k gas) instead of creating a slot (20k). Ids without one (high bits
    ///      zero) are marked one slot each.
    mapping(uint256 word => uint256 bits) private _paidBitmap;
    mapping(bytes32 paymentId => bool) private _paid;
    mapping(bytes32 merchantId => address) private _payoutAddresses;

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
    /// @notice `amount`, `fee`, `fiatAmount`, `rate` and `deadline` are the intent's;
    ///         `received` arrived at the deposit address, `feeCharged` went to the treasury.
    event DepositSwept(
        bytes32 indexed paymentId,
        bytes32 indexed merchantId,
        address indexed depositAddress,
        address token,
        uint256 amount,
        uint256 fee,
        uint256 fiatAmount,
        uint256 rate,
        uint256 deadline,
        uint256 received,
        uint256 feeCharged
    );
    event Collected(
        bytes32 indexed merchantId, address indexed token, address indexed collector, uint256 amount, uint256 fee
    );
    event Withdrawal(bytes32 indexed merchantId, address indexed token, address indexed to, uint256 amount);
    event SettlementInitiated(
        bytes32 indexed merchantId,
        address indexed token,
        bytes32 indexed settlementRef,
        uint256 amount,
        uint256 rate,
        uint256 fiatAmount
    );
    event Refunded(
        bytes32 indexed paymentId, bytes32 indexed merchantId, address indexed to, address token, uint256 amount
    );
    event TreasuryWithdrawal(address indexed token, address indexed to, uint256 amount);
    event PayoutAddressSet(bytes32 indexed merchantId, address indexed payoutAddress);
    event TokenAllowed(address indexed token, bool allowed);

    error InvalidSigner(address signer);
    error IntentExpired(uint256 deadline);
    error PaymentAlreadyUsed(bytes32 paymentId);
    error TokenNotAllowed(address token);
    error InvalidAmount();
    error InvalidFee(uint256 amount, uint256 fee);
    error InsufficientBalance(uint256 available, uint256 requested);
    error PayoutAddressNotSet(bytes32 merchantId);
    error ZeroAddress();
    error DepositForwardFailed(address depositAddress);

    constructor(address admin) EIP712("OpenPayGateway", "1") {
        if (admin == address(0)) revert ZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        bytes memory initcode = OpenPayDepositForwarder.INITCODE;
        assert(initcode.length == _INITCODE_SIZE);
        bytes32 word0;
        bytes32 word1;
        assembly ("memory-safe") {
            word0 := mload(add(initcode, 0x20))
            word1 := mload(add(initcode, 0x40))
        }
        _INITCODE_0 = word0;
        _INITCODE_1 = word1 & ~bytes32(uint256(0xff)); // the byte after the 63 is not ours
        DEPOSIT_INITCODE_HASH = keccak256(initcode);
    }

    // ------------------------------------------------------------------ inflows

    /// @notice Pays `intent` from the caller's allowance. The signature must come from an OPERATOR.
    /// @dev No reentrancy guard needed: every state change happens before the only external call,
    ///      to an allowlisted token.
    function pay(PaymentIntent calldata intent, bytes calldata signature) external whenNotPaused {
        if (block.timestamp > intent.deadline) revert IntentExpired(intent.deadline);
        address signer = ECDSA.recover(_hashTypedDataV4(_structHash(intent)), signature);
        if (!hasRole(OPERATOR_ROLE, signer)) revert InvalidSigner(signer);
        uint256 amount = intent.amount;
        uint256 fee = intent.fee;
        if (amount == 0) revert InvalidAmount();
        if (fee > amount) revert InvalidFee(amount, fee);
        address token = intent.token;
        TokenState storage state = _tokens[token];
        if (!state.allowed) revert TokenNotAllowed(token);

        _markPaid(intent.paymentId);
        unchecked {
            // fee <= amount, and the token's total supply bounds every balance
            _balances[intent.merchantId][token] += amount - fee;
        }
        state.treasury += uint248(fee);
        IERC20(token).safeTransferFrom(msg.sender, address(this), amount);
        emit PaymentReceived(
            intent.paymentId, intent.merchantId, msg.sender, token, amount, fee, intent.fiatAmount, intent.rate
        );
    }

    /// @notice Moves what arrived at the intent's deposit address into the gateway.
    /// @dev The fee is proportional to what arrived: `received * intent.fee / intent.amount`, rounded
    ///      down (in the merchant's favour). An unlisted token or an empty deposit address sweeps
    ///      nothing, emits nothing and does not revert, so one stale intent never blocks a batch.
    ///      Sweeping again later moves whatever arrived since. The deadline is not checked: money
    ///      that arrives late is still the customer's payment and the node decides what to do.
    function sweep(PaymentIntent calldata intent) external onlyRole(OPERATOR_ROLE) whenNotPaused nonReentrant {
        _sweep(intent);
    }

    /// @notice `sweep` for many intents in one transaction.
    function sweepBatch(PaymentIntent[] calldata intents)
        external
        onlyRole(OPERATOR_ROLE)
        whenNotPaused
        nonReentrant
    {
        for (uint256 i = 0; i < intents.length; ++i) {
            _sweep(intents[i]);
        }
    }

    /// @notice Credits `amount` that a COLLECTOR (the subscriptions contract) already moved into
    ///         this contract; `fee` of it goes to the treasury.
    function creditCollected(bytes32 merchantId, address token, uint256 amount, uint256 fee)
        external
        onlyRole(COLLECTOR_ROLE)
        whenNotPaused
    {
        if (fee > amount) revert InvalidFee(amount, fee);
        TokenState storage state = _tokens[token];
        if (!state.allowed) revert TokenNotAllowed(token);
        unchecked {
            _balances[merchantId][token] += amount - fee;
        }
        state.treasury += uint248(fee);
        emit Collected(merchantId, token, msg.sender, amount, fee);
    }

    // ------------------------------------------------------------------ outflows

    /// @notice Sends `amount` of the merchant's balance to its registered payout address.
    function withdraw(bytes32 merchantId, address token, uint256 amount)
        external
        onlyRole(OPERATOR_ROLE)
        whenNotPaused
        nonReentrant
    {
        address to = _payoutAddresses[merchantId];
        if (to == address(0)) revert PayoutAddressNotSet(merchantId);
        _debit(merchantId, token, amount);
        IERC20(token).safeTransfer(to, amount);
        emit Withdrawal(merchantId, token, to, amount);
    }

    /// @notice Returns `amount` of a payment from the merchant's balance to `to` (the payer or
    ///         any address the customer gave).
    function refund(bytes32 paymentId, bytes32 merchantId, address token, address to, uint256 amount)
        external
        onlyRole(OPERATOR_ROLE)
        whenNotPaused
        nonReentrant
    {
        if (to == address(0)) revert ZeroAddress();
        _debit(merchantId, token, amount);
        IERC20(token).safeTransfer(to, amount);
        emit Refunded(paymentId, merchantId, to, token, amount);
    }

    /// @notice Moves merchant funds to the treasury, which pays the merchant in LKR off chain.
    /// @param settlementRef the settlement batch id; `rate` (8 decimals) and `fiatAmount` (LKR cents)
    ///        are what the merchant is paid.
    function settle(
        bytes32 merchantId,
        address token,
        uint256 amount,
        bytes32 settlementRef,
        uint256 rate,
        uint256 fiatAmount
    ) external onlyRole(TREASURER_ROLE) whenNotPaused {
        _debit(merchantId, token, amount);
        _tokens[token].treasury += uint248(amount);
        emit SettlementInitiated(merchantId, token, settlementRef, amount, rate, fiatAmount);
    }

    /// @notice Sends treasury funds (fees, settled amounts) to `to`, e.g. an exchange to sell for LKR.
    function withdrawTreasury(address token, address to, uint256 amount)
        external
        onlyRole(TREASURER_ROLE)
        whenNotPaused
        nonReentrant
    {
        if (to == address(0)) revert ZeroAddress();
        if (amount == 0) revert InvalidAmount();
        TokenState storage state = _tokens[token];
        uint256 available = state.treasury;
        if (amount > available) revert InsufficientBalance(available, amount);
        unchecked {
            state.treasury = uint248(available - amount);
        }
        IERC20(token).safeTransfer(to, amount);
        emit TreasuryWithdrawal(token, to, amount);
    }

    // ------------------------------------------------------------------ administration

    function setPayoutAddress(bytes32 merchantId, address payoutAddress) external onlyRole(ADMIN_ROLE) {
        if (payoutAddress == address(0)) revert ZeroAddress();
        _payoutAddresses[merchantId] = payoutAddress;
        emit PayoutAddressSet(merchantId, payoutAddress);
    }

    function setTokenAllowed(address token, bool allowed) external onlyRole(ADMIN_ROLE) {
        if (token == address(0)) revert ZeroAddress();
        _tokens[token].allowed = allowed;
        emit TokenAllowed(token, allowed);
    }

    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
    }

    // ------------------------------------------------------------------ views

    function balanceOf(bytes32 merchantId, address token) external view returns (uint256) {
        return _balances[merchantId][token];
    }

    function treasuryBalance(address token) external view returns (uint256) {
        return _tokens[token].treasury;
    }

    function isTokenAllowed(address token) external view returns (bool) {
        return _tokens[token].allowed;
    }

    function isPaid(bytes32 paymentId) external view returns (bool) {
        uint256 sequence = uint256(paymentId) >> 128;
        if (sequence == 0) return _paid[paymentId];
        return _paidBitmap[sequence >> 8] & (1 << (sequence & 0xff)) != 0;
    }

    function payoutAddress(bytes32 merchantId) external view returns (address) {
        return _payoutAddresses[merchantId];
    }

    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @notice The EIP-712 digest an OPERATOR signs; also the deposit address's CREATE2 salt.
    function hashIntent(PaymentIntent calldata intent) public view returns (bytes32) {
        return _hashTypedDataV4(_structHash(intent));
    }

    /// @notice Who signed `intent` (what `pay` checks against OPERATOR_ROLE).
    function intentSigner(PaymentIntent calldata intent, bytes calldata signature) external view returns (address) {
        return ECDSA.recover(hashIntent(intent), signature);
    }

    function depositAddress(PaymentIntent calldata intent) external view returns (address) {
        return _depositAddress(hashIntent(intent));
    }

    /// @notice While `sweep` creates a deposit address: the token and amount its constructor
    ///         must send here (see `OpenPayDepositForwarder`). Meaningless at any other time.
    function depositContext() external view returns (address token, uint256 amount) {
        assembly ("memory-safe") {
            token := tload(_SWEEP_TOKEN_SLOT)
            amount := tload(_SWEEP_AMOUNT_SLOT)
        }
    }

    // ------------------------------------------------------------------ internals

    function _structHash(PaymentIntent calldata intent) private pure returns (bytes32 digest) {
        bytes32 typehash = PAYMENT_INTENT_TYPEHASH;
        // keccak256(abi.encode(typehash, intent)) without the intermediate memory copy:
        // every field is a static 32-byte word.
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, typehash)
            calldatacopy(add(ptr, 0x20), intent, 0x100)
            digest := keccak256(ptr, 0x120)
        }
    }

    function _sweep(PaymentIntent calldata intent) private {
        address token = intent.token;
        TokenState storage state = _tokens[token];
        if (!state.allowed) return;
        uint256 amount = intent.amount;
        uint256 fee = intent.fee;
        if (amount == 0) revert InvalidAmount();
        if (fee > amount) revert InvalidFee(amount, fee);
        bytes32 salt = _hashTypedDataV4(_structHash(intent));
        address deposit = _depositAddress(salt);
        uint256 received = IERC20(token).balanceOf(deposit);
        if (received == 0) return;
        _forward(token, received, salt, deposit);

        // received and fee below 2**128 cannot overflow the product; mulDiv only for the rest
        uint256 feeCharged =
            (received | fee) >> 128 == 0 ? received * fee / amount : Math.mulDiv(received, fee, amount);
        unchecked {
            _balances[intent.merchantId][token] += received - feeCharged;
        }
        state.treasury += uint248(feeCharged);
        _emitSwept(intent, deposit, received, feeCharged);
    }

    /// @dev `keccak256(0xff ++ this ++ salt ++ DEPOSIT_INITCODE_HASH)[12:]`.
    function _depositAddress(bytes32 salt) private view returns (address deposit) {
        bytes32 initcodeHash = DEPOSIT_INITCODE_HASH;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(add(ptr, 0x40), initcodeHash)
            mstore(add(ptr, 0x20), salt)
            mstore(ptr, address())
            mstore8(add(ptr, 0x0b), 0xff)
            deposit := and(keccak256(add(ptr, 0x0b), 0x55), 0xffffffffffffffffffffffffffffffffffffffff)
        }
    }

    /// @dev Creates the deposit address, whose constructor sends `amount` of `token` here and
    ///      self-destructs (see `OpenPayDepositForwarder`). The transient values need no
    ///      clearing: only a constructor this contract starts reads them, right after they are set.
    function _forward(address token, uint256 amount, bytes32 salt, address deposit) private {
        bytes32 word0 = _INITCODE_0;
        bytes32 word1 = _INITCODE_1;
        address created;
        assembly ("memory-safe") {
            tstore(_SWEEP_TOKEN_SLOT, token)
            tstore(_SWEEP_AMOUNT_SLOT, amount)
            let ptr := mload(0x40)
            mstore(ptr, word0)
            mstore(add(ptr, 0x20), word1)
            created := create2(0, ptr, _INITCODE_SIZE, salt)
        }
        if (created == address(0)) revert DepositForwardFailed(deposit);
    }

    /// @dev `emit DepositSwept(...)` without the ABI encoder: the event's first six data words
    ///      are the intent's words 2..7 as they are in calldata (`_sweep` already read
    ///      `intent.token`, which reverts unless it is a clean address).
    function _emitSwept(PaymentIntent calldata intent, address deposit, uint256 received, uint256 feeCharged)
        private
    {
        bytes32 topic = DepositSwept.selector;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            calldatacopy(ptr, add(intent, 0x40), 0xc0)
            mstore(add(ptr, 0xc0), received)
            mstore(add(ptr, 0xe0), feeCharged)
            log4(ptr, 0x100, topic, calldataload(intent), calldataload(add(intent, 0x20)), deposit)
        }
    }

    function _markPaid(bytes32 paymentId) private {
        uint256 sequence = uint256(paymentId) >> 128;
        if (sequence == 0) {
            if (_paid[paymentId]) revert PaymentAlreadyUsed(paymentId);
            _paid[paymentId] = true;
            return;
        }
        uint256 bit = 1 << (sequence & 0xff);
        uint256 bits = _paidBitmap[sequence >> 8];
        if (bits & bit != 0) revert PaymentAlreadyUsed(paymentId);
        _paidBitmap[sequence >> 8] = bits | bit;
    }

    function _debit(bytes32 merchantId, address token, uint256 amount) private {
        if (amount == 0) revert InvalidAmount();
        uint256 available = _balances[merchantId][token];
        if (amount > available) revert InsufficientBalance(available, amount);
        unchecked {
            _balances[merchantId][token] = available - amount;
        }
    }
}
