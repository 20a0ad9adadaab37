"""Everything that talks to the EVM; knows nothing of the database or settings.

- :mod:`chain.artifacts` — ``load_artifacts()`` (compiles ``contracts/`` once, cached by hash)
- :mod:`chain.deploy` — ``deploy(w3, signer, ...) -> Deployment``; ``Deployment.save/load``
- :mod:`chain.intents` — ``PaymentIntent``, ``IntentDomain``, ``sign_intent``, ``recover_signer``
- :mod:`chain.deposits` — ``deposit_address(intent, domain, implementation)`` (= the initcode hash)
- :mod:`chain.events` — typed events, ``decode_log``/``decode_logs``, ``topics_of``
- :mod:`chain.client` — ``RpcClient`` (async JSON-RPC, failover), ``make_async_web3``
- :mod:`chain.txsender` — ``TxSender`` (nonces, gas, fees, replacement, revert decoding)
- :mod:`chain.oracle` — ``RateOracle``, ``should_post``
- :mod:`chain.errors` — ``ChainError`` and subclasses
"""
