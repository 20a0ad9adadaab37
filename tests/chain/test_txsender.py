"""TxSender on a real anvil: nonces under concurrency, stuck-transaction replacement, reverts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from chain.client import RpcClient
from chain.errors import ChainError, ContractRevert
from chain.txsender import NonceManager, TxSender
from tests.fixtures.contracts import KEYS, OPERATOR, PAYERS, UNIT, Chain

KEY = KEYS[12]


@pytest.fixture
async def rpc(contracts: Chain) -> AsyncIterator[RpcClient]:
    async with RpcClient(contracts.rpc.urls) as client:
        yield client


def sender(chain: Chain, rpc: RpcClient, key: str = KEY, **kwargs: object) -> TxSender:
    """A sender with its own nonce manager: the chain is reverted after each test, so a
    manager shared across tests would remember nonces that no longer exist."""
    kwargs.setdefault("nonces", NonceManager(TxSender(rpc, key, chain_id=1).address))
    return TxSender(rpc, key, chain_id=chain.deployment.chain_id, errors=chain.artifacts.error_decoder,
                    poll_interval=0.02, **kwargs)  # type: ignore[arg-type]


class TestNonces:
    async def test_two_concurrent_senders_on_one_key_never_reuse_a_nonce(self, contracts: Chain,
                                                                          rpc: RpcClient) -> None:
        key = KEYS[13]  # the per-loop shared manager of this key is used by this test only
        address = TxSender(rpc, key, chain_id=1).address
        start = int(await rpc.request("eth_getTransactionCount", [address, "pending"]), 16)
        first, second = sender(contracts, rpc, key, nonces=None), sender(contracts, rpc, key, nonces=None)
        assert first._manager() is second._manager()
        mint = contracts.token_art.encode_call("faucet", address, UNIT)
        receipts = await asyncio.gather(*(
            s.send(contracts.deployment.token, mint) for _ in range(12) for s in (first, second)
        ))
        nonces = sorted(r.nonce for r in receipts)
        assert nonces == list(range(start, start + 24))
        assert all(r.status == 1 for r in receipts)
        assert contracts.token_balance(address) == 24 * UNIT

    async def test_nonce_used_elsewhere_is_relearned(self, contracts: Chain, rpc: RpcClient) -> None:
        tx_sender = sender(contracts, rpc)
        mint = contracts.token_art.encode_call("faucet", tx_sender.address, UNIT)
        await tx_sender.send(contracts.deployment.token, mint)
        other = sender(contracts, rpc, nonces=NonceManager(tx_sender.address))  # unaware of the first
        await other.send(contracts.deployment.token, mint)
        receipt = await tx_sender.send(contracts.deployment.token, mint)  # its counter is stale now
        assert receipt.status == 1


class TestReplacement:
    @pytest.mark.parametrize("legacy", [True, False])
    async def test_stuck_transaction_is_replaced_with_higher_fees(self, contracts: Chain, rpc: RpcClient,
                                                                  legacy: bool) -> None:
        broadcasts: list[tuple[int, str, int]] = []
        tx_sender = sender(contracts, rpc, legacy=legacy, replace_after=0.2,
                           on_broadcast=lambda n, h, a: broadcasts.append((n, h, a)))
        mint = contracts.token_art.encode_call("faucet", tx_sender.address, UNIT)
        await rpc.request("evm_setAutomine", [False])
        try:
            task = asyncio.create_task(tx_sender.send(contracts.deployment.token, mint))
            while len(broadcasts) < 2:  # the first stays in the pool: no block is mined
                await asyncio.sleep(0.02)
            pool = await rpc.request("txpool_content")
            pending = {k.lower(): v for k, v in pool["pending"].items()}[tx_sender.address.lower()]
            assert len(pending) == 1, "the replacement must take the original's place"
            await rpc.request("evm_mine")
            receipt = await asyncio.wait_for(task, 10)
        finally:
            await rpc.request("evm_setAutomine", [True])
            if not task.done():
                task.cancel()
        first_hash, replacement_hash = broadcasts[0][1], broadcasts[1][1]
        assert broadcasts[0][0] == broadcasts[1][0] == receipt.nonce
        assert receipt.tx_hash in {h for _, h, _ in broadcasts[1:]}
        assert first_hash in receipt.replaced
        assert await rpc.request("eth_getTransactionReceipt", [first_hash]) is None
        first = await rpc.request("eth_getTransactionByHash", [replacement_hash])
        field = "gasPrice" if legacy else "maxPriorityFeePerGas"
        assert first is not None and field in first
        assert contracts.token_balance(tx_sender.address) == UNIT

    def test_bump_below_ten_percent_is_refused(self, contracts: Chain) -> None:
        with pytest.raises(ValueError):
            TxSender(RpcClient("http://127.0.0.1:1"), KEY, chain_id=1, bump=1.05)


class TestReverts:
    async def test_revert_at_estimation_raises_decoded_custom_error(self, contracts: Chain, rpc: RpcClient) -> None:
        tx_sender = sender(contracts, rpc)
        start = int(await rpc.request("eth_getTransactionCount", [tx_sender.address, "pending"]), 16)
        merchant = contracts.new_merchant()
        data = contracts.gateway.encode_call("withdraw", merchant, contracts.deployment.token, UNIT)
        with pytest.raises(ContractRevert) as caught:
            await tx_sender.send(contracts.deployment.gateway, data)
        assert isinstance(caught.value, ChainError)
        assert caught.value.error_name == "AccessControlUnauthorizedAccount"
        assert caught.value.args_decoded[0] == tx_sender.address.lower()
        assert int(await rpc.request("eth_getTransactionCount", [tx_sender.address, "pending"]), 16) == start

    async def test_mined_revert_raises_decoded_custom_error_with_hash(self, contracts: Chain, rpc: RpcClient) -> None:
        operator = sender(contracts, rpc, KEYS[1])
        merchant = contracts.new_merchant()
        data = contracts.gateway.encode_call("withdraw", merchant, contracts.deployment.token, UNIT)
        with pytest.raises(ContractRevert) as caught:
            await operator.send(contracts.deployment.gateway, data, gas=200_000)  # skips estimation
        assert caught.value.error_name == "PayoutAddressNotSet"
        assert caught.value.args_decoded == (merchant,)
        assert caught.value.tx_hash is not None
        receipt = await rpc.request("eth_getTransactionReceipt", [caught.value.tx_hash])
        assert receipt["status"] == "0x0"
        assert operator.address == OPERATOR

    async def test_call_reverts_decoded(self, contracts: Chain, rpc: RpcClient) -> None:
        tx_sender = sender(contracts, rpc)
        contracts.fund(PAYERS[0], UNIT)
        intent = contracts.intent(contracts.new_merchant(), UNIT)
        data = contracts.gateway.encode_call("pay", intent.as_tuple(), contracts.sign(intent, KEYS[7]))
        with pytest.raises(ContractRevert) as caught:
            await tx_sender.call(contracts.deployment.gateway, data, sender=PAYERS[0])
        assert caught.value.error_name == "InvalidSigner"
