"""One exception hierarchy for everything that talks to the chain."""

from __future__ import annotations

from typing import Any


class ChainError(Exception):
    """Root of every error raised by :mod:`chain`."""


class CompileError(ChainError):
    """solc rejected the sources or could not be run."""


class DeploymentError(ChainError):
    """A deployment could not be completed or a deployments file is invalid."""


class RpcError(ChainError):
    """A JSON-RPC endpoint answered with an error or could not be reached."""

    def __init__(self, message: str, *, code: int | None = None, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


class RpcUnavailable(RpcError):
    """No endpoint answered (connection refused, timeout) after all retries."""


class ContractRevert(ChainError):
    """A call or transaction reverted; carries the decoded custom error when known.

    ``error_name`` is e.g. ``"InvalidSigner"``, ``"Error"`` (a ``require`` string) or
    ``"Panic"``; ``args`` are the decoded arguments in ABI order; ``data`` is the raw revert
    data (``b""`` when the node gave none).
    """

    def __init__(self, error_name: str | None, args: tuple[Any, ...], data: bytes,
                 *, tx_hash: str | None = None) -> None:
        self.error_name = error_name
        self.args_decoded = args
        self.data = data
        self.tx_hash = tx_hash
        shown = f"{error_name}{args!r}" if error_name else f"unknown revert 0x{data.hex()}"
        super().__init__(f"execution reverted: {shown}" + (f" (tx {tx_hash})" if tx_hash else ""))

    @property
    def reason(self) -> str | None:
        """The ``require`` message for ``Error(string)`` reverts."""
        if self.error_name == "Error" and self.args_decoded:
            return str(self.args_decoded[0])
        return None


class TransactionNotMined(ChainError):
    """A transaction (and its replacements) was not mined before the deadline."""


class NonceError(ChainError):
    """The node rejected the nonce we chose and resynchronising did not help."""
