pytest_plugins = [
    "tests.fixtures.anvil",
    "tests.fixtures.infra",
    "tests.fixtures.api",
    "tests.fixtures.contracts",
]
