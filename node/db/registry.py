"""Imports every domain's models so ``metadata`` knows all tables (for Alembic)."""

import node.admin.models  # noqa: F401
import node.bus  # noqa: F401
import node.indexing.models  # noqa: F401
import node.merchants.models  # noqa: F401
import node.settlement.models  # noqa: F401
import node.webhooks.models  # noqa: F401
import node.notifications.models  # noqa: F401
import node.exchange.treasury_models  # noqa: F401
import node.exchange.rate_models  # noqa: F401
import node.payments.models  # noqa: F401
