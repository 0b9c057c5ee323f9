"""Typed application and request keys shared by the modules that serve."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from .settings import Settings
    from .storage import Storage

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
STORAGE: web.AppKey[Storage] = web.AppKey("storage")

# What a request carries between the middlewares and its handler.
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)
ACCOUNT: web.RequestKey[str] = web.RequestKey("account", str)
