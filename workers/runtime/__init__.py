"""The runtime: settings, the Faust app and its agents, HTTP views, lifecycle and the composition root.

Public API: ``settings`` (the ``Settings`` object), ``compose`` (``Runtime``) and ``serve``;
the other modules are the machinery they wire.
"""

__all__ = ["compose", "serve", "settings"]
