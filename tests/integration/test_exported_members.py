"""The public API of packages that others import by name stays exactly what it is."""

from __future__ import annotations

import workers.devtools.embedded


def test_embedded_exports_exactly_its_public_names() -> None:
    expected = {
        "EmbeddedStack", "StackUrls", "StackStartError", "PortInUse", "ServiceProcess",
        "HOST", "INSTALL_FIX", "SYSTEM_REDIS_URL",
    }  # fmt: skip
    assert set(workers.devtools.embedded.__all__) == expected
    for name in expected:
        assert getattr(workers.devtools.embedded, name) is not None
