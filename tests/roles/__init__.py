"""Role logic unit tests: plain async roles over the in-memory adapters, no server."""
