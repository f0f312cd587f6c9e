"""The door every request passes: who calls (``identity``: a bearer token or a trusted proxy's
headers verified into an actor, transport-free), from where (``origins``: cross-site writes and
upgrades refused), and the middleware that answers 401/403 on their word (``auth``).

Public API: the modules in ``__all__``.
"""

__all__ = ["auth", "identity", "origins"]
