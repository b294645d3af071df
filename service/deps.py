"""FastAPI dependencies: typed aliases for what handlers need from the application state.

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, and two such
hops per request (a thread switch and a lock each) cost more than the whole route under concurrent load;
these only read the application state, so they run on the event loop."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from .registry import ModelRegistry
from .settings import Settings


async def get_app_settings(request: Request) -> Settings:
    """The settings the application was created with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_registry(request: Request) -> ModelRegistry:
    """The model registry created by the lifespan."""
    registry: ModelRegistry = request.app.state.registry
    return registry


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
