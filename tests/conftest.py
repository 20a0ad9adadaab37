pytest_plugins = [
    "tests.fixtures.anvil",
]
