"""The HTTP server: FastAPI app factory, routers and the static web UI."""
