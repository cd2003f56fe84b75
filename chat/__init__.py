"""timingle-chat: real-time chat for timingle events (WebSocket gateway, REST API, stores)."""

__version__ = "0.1.0"
