"""The original wire protocol's routes (``/v1/sdk/...``), byte-compatible with its SDKs and plugins."""
