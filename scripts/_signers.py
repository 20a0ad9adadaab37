"""Signers for ape scripts (a leading underscore: ape does not list this file as a script)."""

from __future__ import annotations

from typing import Any

import click
from ape import accounts
from hexbytes import HexBytes
from web3 import Web3
from web3.types import TxParams

from chain.deploy import LocalSigner, TransactionSigner


class ApeAccountSigner:
    """Sends through an ape account (keyfile, hardware wallet...): ape signs and broadcasts."""

    def __init__(self, account: Any) -> None:
        self.account = account

    @property
    def address(self) -> str:
        return str(self.account.address)

    def send_transaction(self, w3: Web3, tx: TxParams) -> HexBytes:
        ecosystem = self.account.provider.network.ecosystem
        fields: dict[str, Any] = {"data": tx.get("data", b""), "value": tx.get("value", 0)}
        if tx.get("to"):
            fields["receiver"] = tx["to"]
        receipt = self.account.call(ecosystem.create_transaction(**fields))
        return HexBytes(receipt.txn_hash)


def signer_for(provider: Any, alias: str | None) -> TransactionSigner:
    if alias:
        return ApeAccountSigner(accounts.load(alias))
    if not provider.network.is_local and provider.network.name not in ("local",):
        raise click.UsageError("live network: pass --account ALIAS (an ape account)")
    account = accounts.test_accounts[0]
    return LocalSigner(account.private_key)
