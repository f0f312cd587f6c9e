"""``eventfleet erase SUBJECT``: destroy a subject's data key, so every copy of its personal
data is unreadable (crypto-shredding), and record who did it in the operator trail.

Exit codes: 0 erased (or erased before), 1 failure (unknown subject, not confirmed, the store
down), 2 usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TextIO

from snapshot_rules.personal import subject_problem
from topics.errors import EventfleetError, InvalidInput
from workers.cli.parsing import Commands, command
from workers.cli.shell import USAGE, confirmed, fail, operator_name, print_json
from workers.runtime.settings import Settings


def add_parser(commands: Commands) -> None:
    erase = command(
        commands,
        "erase",
        "erase a subject's personal data everywhere (destroys its key; audited)",
        "Destroys the subject's data key: its personal fields become unreadable in "
        "the store, snapshots, views, dead letters and every topic (shown as null with "
        '"erased": true). No process seals with it again; others stop opening it within '
        "EVENTFLEET_KEY_CACHE_TTL_S. Erased before, or by a concurrent erase: that erasure is "
        "answered (already erased). Asks to confirm (--yes skips). Exit 0 erased (now or "
        "before), 1 failure or unknown subject, 2 usage.",
    )
    erase.add_argument("subject", help="whose data: a chat sender_id, an account id, ...")
    erase.add_argument("--operator", help="who erases, for the audit trail (default: $USER)")
    erase.add_argument("--yes", action="store_true", help="do not ask to confirm")
    erase.add_argument("--json", action="store_true", help="print the answer as JSON")


async def run_erase(
    settings: Settings,
    args: argparse.Namespace,
    *,
    out: TextIO | None = None,
    ask: Callable[[str], str] = input,
) -> int:
    from workers.roles.deadletter import check_operator
    from workers.roles.outcomes import Refused
    from workers.roles.personal import erase_subject
    from workers.runtime.answers import erasure_answer
    from workers.runtime.compose import Runtime

    out = out or sys.stdout
    problem = subject_problem(args.subject)
    if problem is not None:
        return fail(f"subject {args.subject!r:.80} {problem}.", USAGE)
    try:
        operator = check_operator(operator_name(args.operator, "erases"), "erases")
    except InvalidInput as e:
        return fail(str(e), USAGE)
    question = f"erase every personal field of subject {args.subject}, for good? [y/N] "
    if not args.yes and not confirmed(ask, question):
        return fail("not confirmed; nothing was erased.")
    async with Runtime.running(settings, roles=()) as runtime:  # the store only: no Kafka, no Redis
        try:
            outcome = await erase_subject(
                runtime.shredder,
                runtime.stores.actions,
                args.subject,
                operator=operator,
                via="cli",
                cache_ttl_s=settings.key_cache_ttl_s,
                render=erasure_answer,
            )
        except EventfleetError as e:
            return fail(str(e))
    if isinstance(outcome, Refused):
        return fail(outcome.message)
    b = erasure_answer(outcome).body
    if args.json:
        return print_json(out, b)
    again = " (it had been erased before; nothing was left)" if b["already_erased"] else ""
    out.write(
        f"erased subject {b['subject']} at {b['erased_at']} by {b['by']}{again}: "
        f"{b['keys_destroyed']} key(s) destroyed; nothing is sealed with it again and "
        f"every copy is unreadable within {b['unreadable_everywhere_within_s']} s.\n"
    )
    return 0
