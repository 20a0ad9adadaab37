"""The hot path's one-digest signer and deposit address equal chain/'s reference functions."""

from __future__ import annotations

import uuid

from eth_account import Account

from chain.deploy import Deployment
from chain.deposits import deposit_address
from chain.intents import IntentDomain, PaymentIntent, payment_id, recover_signer, uuid_to_bytes32
from node.config import DEV_OPERATOR_KEY
from node.payments import onchain


def test_sign_and_deposit_equals_the_reference(deployment: Deployment) -> None:
    dom = IntentDomain(deployment.chain_id, deployment.gateway)
    for sequence in (0, 1, 2**100):
        intent = PaymentIntent(payment_id(uuid.uuid4(), sequence), uuid_to_bytes32(uuid.uuid4()), deployment.token,
                               10**18 + sequence, 2 * 10**16, 30_000, 300 * 10**8, 2_000_000_000)
        signature, address = onchain.sign_and_deposit(intent, dom, deployment.forwarder_implementation,
                                                      DEV_OPERATOR_KEY)
        assert signature == onchain.sign(intent, dom, DEV_OPERATOR_KEY)
        assert address == deposit_address(intent, dom, deployment.forwarder_implementation).lower()
        assert recover_signer(intent, dom, signature) == Account.from_key(DEV_OPERATOR_KEY).address
