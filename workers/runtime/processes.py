"""The process managers in a process: which are enabled (``EVENTFLEET_PROCESSES``), checked
against the domains, and the pm role's runner and polls built on the process's parts."""

from __future__ import annotations

from snapshot_rules.process import Processes
from workers.metrics import Metrics, create_process_metrics, prime_processes
from workers.ports import EventStore, MarkPeek, ProcessInstances
from workers.roles.deadletter import DeadLetters
from workers.roles.process.polls import Polls
from workers.roles.process.runner import ProcessRunner, RunnerConfig, Submit
from workers.runtime.role_names import PM_ROLE as PM_ROLE  # its one definition
from workers.runtime.settings import Settings


def process_role(
    settings: Settings,
    processes: Processes,
    instances: ProcessInstances,
    events: EventStore,
    *,
    submit: Submit,
    dead_letters: DeadLetters,
    metrics: Metrics,
    marks: MarkPeek | None = None,
) -> tuple[ProcessRunner, Polls]:
    """The pm role's runner over the command door (``submit``), and its polls (whose due
    deadlines wait for what the door accepted, by its ``marks``)."""
    process_metrics = create_process_metrics(metrics.registry)
    prime_processes(process_metrics, processes.names())
    runner = ProcessRunner(
        processes=processes,
        instances=instances,
        events=events,
        submit=submit,
        dead_letters=dead_letters,
        metrics=process_metrics,
        config=RunnerConfig(
            poll_s=settings.process_poll_ms / 1000,
            unsent_after_s=settings.process_unsent_after_s,
            accepted_wait_s=settings.process_accepted_wait_s,
        ),
    )
    return runner, Polls(runner, marks)
