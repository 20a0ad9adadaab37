"""FastAPI dependencies as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from node.config import Settings as NodeSettings
from node.resources import Resources as NodeResources


def _resources(request: Request) -> NodeResources:
    resources: NodeResources = request.app.state.resources
    return resources


def _settings(request: Request) -> NodeSettings:
    settings: NodeSettings = request.app.state.settings
    return settings


async def _session(resources: Annotated[NodeResources, Depends(_resources)]) -> AsyncIterator[AsyncSession]:
    """The request owns the transaction: it commits once when the route returns."""
    async with resources.db.unit_of_work() as session:
        yield session


Resources = Annotated[NodeResources, Depends(_resources)]
Settings = Annotated[NodeSettings, Depends(_settings)]
Session = Annotated[AsyncSession, Depends(_session)]
