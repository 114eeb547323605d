"""Thin Ray Serve layer: deployments that wire the domain core into HTTP and WebSocket endpoints."""
