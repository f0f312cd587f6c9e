"""Role logic: plain async code over the ports (no Faust, no driver), one module per role."""
