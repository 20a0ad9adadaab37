"""Imports every domain's models so ``metadata`` knows all tables (for Alembic)."""

import node.admin.models
import node.bus
import node.exchange.rate_models
import node.exchange.treasury_models
import node.indexing.models
import node.merchants.models
import node.notifications.models
import node.payments.models
import node.settlement.models
import node.webhooks.models
