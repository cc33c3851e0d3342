"""The HTTP edge: dashboard, REST, WebSocket, SSE and polling (raw edges and the Quart app over h11, trio)."""
