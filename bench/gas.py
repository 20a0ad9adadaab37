"""Gas used by the gateway's calls beside a plain ERC-20 transferFrom, on a fresh anvil.

    .venv/bin/python bench/gas.py

Every measured call runs in steady state: the merchant, treasury, gateway and recipient
balances are already non-zero (no 0 -> non-zero SSTORE surcharge on either side), allowances
are finite (so transferFrom pays for the allowance update), and the batch of 20 sweeps credits
20 different merchants (and, in a second row, one merchant). Payment ids carry a sequence
number (chain.intents.payment_id), so `pay` marks them in a shared bitmap word.
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eth_account import Account

from chain.artifacts import load_artifacts
from chain.client import SyncRpcClient, make_web3
from chain.deploy import LocalSigner, deploy
from chain.intents import IntentDomain, PaymentIntent, payment_id, sign_intent, uuid_to_bytes32
from node.infra.anvil import DEFAULT_MNEMONIC, EmbeddedAnvil
from node.infra.process import free_port

UNIT = 10**18
Account.enable_unaudited_hdwallet_features()
KEYS = ["0x" + Account.from_mnemonic(DEFAULT_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").key.hex()
        for i in range(10)]
ADDR = [Account.from_key(k).address for k in KEYS]
ADMIN, OPERATOR, TREASURER, PAYER, SPENDER, RECIPIENT, SUBSCRIBER = ADDR[0], ADDR[1], ADDR[2], ADDR[4], ADDR[5], \
    ADDR[6], ADDR[7]


class Bench:
    def __init__(self, url: str) -> None:
        self.rpc = SyncRpcClient(url, timeout=60)
        self.art = load_artifacts()
        self.d = deploy(make_web3(url), LocalSigner(KEYS[0]), operator=OPERATOR, treasurer=TREASURER,
                        reporter=OPERATOR, artifacts=self.art)
        self.addr = {"OpenPayGateway": self.d.gateway, "MockUSDT": self.d.token,
                     "OpenPaySubscriptions": self.d.subscriptions}
        self.domain = IntentDomain(self.d.chain_id, self.d.gateway)
        self.sequence = 1000  # payment ids carry a node-allocated sequence number (see chain.intents)

    def tx(self, sender: str, contract: str, fn: str, *args: Any) -> int:
        data = self.art[contract].encode_call(fn, *args)
        tx_hash = self.rpc.request("eth_sendTransaction", [
            {"from": sender, "to": self.addr[contract], "data": "0x" + data.hex(), "gas": hex(10_000_000)}
        ])
        for _ in range(1000):
            receipt = self.rpc.request("eth_getTransactionReceipt", [tx_hash])
            if receipt:
                break
            time.sleep(0.002)
        assert receipt["status"] == "0x1", f"{fn} reverted"
        return int(receipt["gasUsed"], 16)

    def intent(self, merchant: bytes, amount: int, fee: int) -> PaymentIntent:
        self.sequence += 1
        return PaymentIntent(payment_id(uuid.uuid4(), self.sequence), merchant, self.d.token, amount, fee, 30_000_00,
                             300 * 10**8, 2**40)

    def deposit(self, merchant: bytes, amount: int) -> PaymentIntent:
        intent = self.intent(merchant, amount, amount // 100)
        address = self.art["OpenPayGateway"].decode_output(
            "depositAddress",
            bytes.fromhex(self.rpc.request("eth_call", [{"to": self.d.gateway, "data": "0x" + self.art[
                "OpenPayGateway"].encode_call("depositAddress", intent.as_tuple()).hex()}, "latest"])[2:]),
        )[0]
        self.tx(PAYER, "MockUSDT", "transfer", address, amount)
        return intent

    def run(self) -> list[tuple[str, int, int]]:
        token = self.d.token
        for who in (PAYER, SUBSCRIBER, RECIPIENT):
            self.tx(who, "MockUSDT", "faucet", who, 10**9 * UNIT)
        merchant = uuid_to_bytes32(uuid.uuid4())
        self.tx(ADMIN, "OpenPayGateway", "setPayoutAddress", merchant, ADDR[8])

        def pay(amount: int) -> int:
            self.tx(PAYER, "MockUSDT", "approve", self.d.gateway, amount * 2)
            intent = self.intent(merchant, amount, amount // 100)
            return self.tx(PAYER, "OpenPayGateway", "pay", intent.as_tuple(), sign_intent(intent, self.domain,
                                                                                           KEYS[1]))

        def transfer_from(amount: int) -> int:
            self.tx(PAYER, "MockUSDT", "approve", SPENDER, amount * 2)
            return self.tx(SPENDER, "MockUSDT", "transferFrom", PAYER, RECIPIENT, amount)

        pay(10 * UNIT)  # warm-up: merchant, treasury and gateway balances become non-zero
        transfer_from(10 * UNIT)
        rows: list[tuple[str, int, int]] = []
        baseline = transfer_from(25 * UNIT)
        rows.append(("pay", pay(25 * UNIT), baseline))
        self.sequence = (self.sequence // 256 + 1) * 256 - 1  # next id opens a fresh bitmap word
        rows.append(("pay (1 in 256: opens a bitmap word)", pay(25 * UNIT), baseline))

        rows.append(("sweep (1 deposit)", self.tx(
            OPERATOR, "OpenPayGateway", "sweep", self.deposit(merchant, 25 * UNIT).as_tuple()), baseline))

        merchants = [uuid_to_bytes32(uuid.uuid4()) for _ in range(20)]
        for m in merchants:  # every merchant already holds a balance
            self.tx(OPERATOR, "OpenPayGateway", "sweep", self.deposit(m, UNIT).as_tuple())
        intents = [self.deposit(m, 25 * UNIT).as_tuple() for m in merchants]
        batch = self.tx(OPERATOR, "OpenPayGateway", "sweepBatch", intents)
        rows.append(("sweepBatch of 20, per deposit", batch // 20, baseline))
        rows.append(("sweepBatch of 20, whole tx", batch, baseline * 20))
        same = [self.deposit(merchant, 25 * UNIT).as_tuple() for _ in range(20)]
        rows.append(("sweepBatch of 20 (1 merchant), per deposit",
                     self.tx(OPERATOR, "OpenPayGateway", "sweepBatch", same) // 20, baseline))

        rows.append(("withdraw", self.tx(OPERATOR, "OpenPayGateway", "withdraw", merchant, token, UNIT), baseline))
        rows.append(("refund", self.tx(OPERATOR, "OpenPayGateway", "refund", bytes(32), merchant, token, PAYER, UNIT),
                     baseline))
        rows.append(("settle", self.tx(TREASURER, "OpenPayGateway", "settle", merchant, token, UNIT, bytes(32),
                                       300 * 10**8, 30_000), baseline))

        plan_max = 10 * UNIT
        self.tx(OPERATOR, "OpenPaySubscriptions", "createPlan", merchant, token, plan_max, 86_400, 0, 100)
        subscribers = ADDR[:4] + ADDR[6:8]
        ids = []
        for i in range(20):
            who = subscribers[i % len(subscribers)]
            if i < len(subscribers):
                self.tx(who, "MockUSDT", "faucet", who, 10**6 * UNIT)
                self.tx(who, "MockUSDT", "approve", self.d.subscriptions, 10**6 * UNIT)
            self.tx(who, "OpenPaySubscriptions", "subscribe", 1)
            ids.append(i + 1)
        charge = self.tx(OPERATOR, "OpenPaySubscriptions", "charge", ids, [plan_max] * 20)
        rows.append(("charge batch of 20, per charge", charge // 20, baseline))
        rows.append(("charge batch of 20, whole tx", charge, baseline * 20))
        return rows


def main() -> None:
    server = EmbeddedAnvil(None, free_port(), accounts=10)
    server.start()
    try:
        rows = Bench(server.url).run()
    finally:
        server.stop()
    print(f"{'call':<44}{'gas':>10}{'transferFrom':>14}{'ratio':>8}")
    for name, gas, base in rows:
        print(f"{name:<44}{gas:>10,}{base:>14,}{gas / base:>8.2f}x")
    pay = dict((n, g / b) for n, g, b in rows)
    print(f"\ntargets: pay <= 2.0x ({pay['pay']:.2f}x), per-deposit in a 20-sweep batch <= 1.5x "
          f"({pay['sweepBatch of 20, per deposit']:.2f}x for 20 merchants, "
          f"{pay['sweepBatch of 20 (1 merchant), per deposit']:.2f}x for one)")


if __name__ == "__main__":
    main()
