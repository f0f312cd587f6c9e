"""The HTTP edge: routes declared once (``routes``), their query parameters bound to typed
declarations (``params``), the request and its body (``request``), answers whole (``responses``)
or streamed (``streaming``: SSE, WebSocket), the ASGI dispatcher behind the door (``app``), and
uvicorn serving it in the process's own loop (``server``)."""
