"""The runtime: settings, the Faust app and its agents, HTTP views, lifecycle and the composition
root.

Public API: ``settings`` (the ``Settings`` object), ``adapters`` (the typed adapter set, real
or in memory), ``compose`` (``Runtime``) and ``serve``;
the other modules are the machinery they wire.
"""

__all__ = ["adapters", "compose", "serve", "settings"]
