pytest_plugins = [
    "tests.fixtures.anvil",
    "tests.fixtures.infra",
    "tests.fixtures.api",
    "tests.fixtures.contracts",
    "tests.fixtures.indexing",
    "tests.fixtures.accounts",
    "tests.fixtures.webhooks",
    "tests.fixtures.smtp",
    "tests.fixtures.payments",
    "tests.fixtures.settlement",
    "tests.fixtures.exchanges",
]
