"""``eventfleet openapi``: print the fleet's OpenAPI 3.1 document, as ``GET /openapi.json``
serves it, from EVENTFLEET_DOMAINS and the auth mode, without starting anything.

Exit codes: 0 printed, 2 usage or configuration (a domain set that does not load).
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

import orjson

from workers.cli.parsing import Commands, command
from workers.runtime.settings import Settings

AUTH_MODES = ("jwt", "proxy", "none")


def add_parser(commands: Commands) -> None:
    found = command(
        commands,
        "openapi",
        "print the OpenAPI 3.1 document of the HTTP API (the domains' schemas, every error)",
        "Prints the document a `worker --role all` process serves at "
        "GET /openapi.json: every route, each event type's data schema from EVENTFLEET_DOMAINS "
        "(personal fields marked x-personal), every error code with its status and body, and "
        "the security scheme of EVENTFLEET_AUTH (--auth overrides it). Starts nothing.",
    )
    found.add_argument(
        "--auth",
        choices=AUTH_MODES,
        help="the auth mode to document (default: EVENTFLEET_AUTH, else jwt)",
    )
    found.add_argument("--output", "-o", help="write to this file instead of stdout")
    found.add_argument("--compact", action="store_true", help="one line, no indentation")


async def run_openapi(
    settings: Settings, args: argparse.Namespace, *, out: TextIO | None = None
) -> int:
    from workers.http.contract import package_version
    from workers.http.openapi import document
    from workers.runtime.loading import load_domains

    domains = load_domains(settings.domains)  # a ConfigError: exit 2 with its sentence
    auth = args.auth or (settings.auth if settings.auth in AUTH_MODES else "jwt")
    managed = bool(settings.processes)  # a fleet serves the process routes only then
    doc = document(domains, None, auth=auth, version=package_version(), processes=managed)
    option = 0 if args.compact else orjson.OPT_INDENT_2
    text = orjson.dumps(doc, option=option).decode() + "\n"
    if args.output:
        _write(args.output, text)
        print(f"wrote {args.output} ({len(doc['paths'])} paths)", file=out or sys.stderr)
    else:
        (out or sys.stdout).write(text)
    return 0


def _write(path: str, text: str) -> None:
    """A one-shot command: nothing else runs on the loop while it writes."""
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)
