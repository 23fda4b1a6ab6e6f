"""Clients that speak to a serving endpoint."""

from adaptgate.bench.backends.openai import OpenAIBackend, auth_headers, new_session

__all__ = ["OpenAIBackend", "auth_headers", "new_session"]
