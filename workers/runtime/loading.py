"""What a process is told to run, imported by name: the domains (``EVENTFLEET_DOMAINS``) and
the process managers beside them (``EVENTFLEET_PROCESSES``), each a ``module:callable``; every
mistake one ConfigError naming the variable and the fix, before anything connects."""

from __future__ import annotations

import importlib

from snapshot_rules.domain import Domains
from snapshot_rules.process import Processes
from topics.errors import ConfigError


def load_domains(spec: str) -> Domains:
    """Import ``module:callable`` and call it; the result must be a Domains.

    Every mistake (a missing module, a Domain named instead of a function, a declaration
    error such as a typo in ``after=``) is one ConfigError naming the variable and the fix.
    """
    fix = "point it at a function returning Domains(...), e.g. 'myapp.domains:enabled'"
    if not spec:
        raise ConfigError(
            f"EVENTFLEET_DOMAINS is not set: {fix} (`eventfleet dev` runs the example domains "
            f"when it is unset; the others never guess)."
        )
    module_name, _, attribute = spec.partition(":")
    where = f"EVENTFLEET_DOMAINS={spec!r}"
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"{where} cannot be imported: {e}; {fix}.") from e
    except (ValueError, TypeError) as e:  # a Domain declared at import time is checked then
        raise ConfigError(f"{where}: {e}") from e
    if not callable(factory):
        raise ConfigError(f"{where} names a {type(factory).__name__}, not a function; {fix}.")
    try:
        domains = factory()
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{where}: {e}") from e
    if not isinstance(domains, Domains):
        raise ConfigError(f"{where} returned {type(domains).__name__}, not Domains; {fix}.")
    return domains


def load_processes(spec: str, domains: Domains) -> Processes:
    """Import ``module:callable`` (``EVENTFLEET_PROCESSES``), call it, check the result against
    the enabled domains; empty: no process manager. Every mistake is one ConfigError naming the
    variable and the fix."""
    if not spec:
        return Processes()
    fix = "point it at a function returning Processes([...]), e.g. 'myapp.domains:processes'"
    module_name, _, attribute = spec.partition(":")
    where = f"EVENTFLEET_PROCESSES={spec!r}"
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
        processes = factory() if callable(factory) else factory
        if not isinstance(processes, Processes):
            raise ConfigError(f"{where} gave {type(processes).__name__}, not Processes; {fix}.")
        processes.check(domains)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"{where} cannot be imported: {e}; {fix}.") from e
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{where}: {e}") from e
    return processes
