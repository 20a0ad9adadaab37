"""The bus consumers the worker role runs; each domain adds its own here."""

from __future__ import annotations

from node.bus import Consumer
from node.resources import Resources


def consumers(resources: Resources) -> list[Consumer]:
    return []
