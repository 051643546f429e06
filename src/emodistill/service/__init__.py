"""The HTTP service: FastAPI app, routes, limits, the WebSocket stream and the web page."""
