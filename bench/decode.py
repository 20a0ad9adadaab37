"""Event decoding throughput: raw JSON-RPC logs -> typed events (chain.events.decode_logs).

    .venv/bin/python bench/decode.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eth_abi.abi import encode

from chain.events import DepositSwept, PaymentReceived, Transfer, decode_logs


def make_logs(n: int) -> list[dict[str, object]]:
    logs: list[dict[str, object]] = []
    for i in range(n):
        kind = i % 3
        base = {"address": "0x" + "ab" * 20, "blockNumber": hex(1_000_000 + i // 50),
                "blockHash": "0x" + f"{i // 50:064x}", "transactionHash": "0x" + f"{i:064x}",
                "logIndex": hex(i % 50), "removed": False, "transactionIndex": hex(i % 50)}
        if kind == 0:
            topics = [PaymentReceived.TOPIC0, "0x" + f"{i:064x}", "0x" + f"{i % 97:064x}", "0x" + f"{i:064x}"]
            data = encode(["address", "uint256", "uint256", "uint256", "uint256"],
                          ["0x" + "55" * 20, 10**20 + i, 10**18, 3_000_000 + i, 300 * 10**8])
        elif kind == 1:
            topics = [DepositSwept.TOPIC0, "0x" + f"{i:064x}", "0x" + f"{i % 97:064x}", "0x" + f"{i:064x}"]
            data = encode(["address"] + ["uint256"] * 7, ["0x" + "55" * 20] + [10**20 + i] * 7)
        else:
            topics = [Transfer.TOPIC0, "0x" + f"{i:064x}", "0x" + f"{i + 1:064x}"]
            data = encode(["uint256"], [10**18 + i])
        logs.append(base | {"topics": topics, "data": "0x" + data.hex()})
    return logs


def main() -> None:
    logs = make_logs(300_000)
    best = 0.0
    for _ in range(3):
        started = time.perf_counter()
        events = decode_logs(logs)
        best = max(best, len(events) / (time.perf_counter() - started))
    print(f"decode_logs: {best:,.0f} events/s (mix of PaymentReceived, DepositSwept, Transfer; best of 3)")


if __name__ == "__main__":
    main()
