"""HTTP interface: merchant REST, the SDK wire protocol, portals, admin."""
