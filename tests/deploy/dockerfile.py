"""A Dockerfile reader for static checks: instructions, stages, and the final image's config."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field

from topics.errors import ConfigError
from workers.runtime.settings import Settings

from .project import check_command, console_scripts, pyproject, setting_names


@dataclass(frozen=True, slots=True)
class Instruction:
    """One instruction: keyword, its argument text, and the line it starts on."""

    keyword: str
    text: str
    line: int


@dataclass(slots=True)
class Stage:
    """One FROM ... AS name stage and its instructions."""

    base: str
    name: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages) of a Dockerfile; continuation lines are joined."""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for ins in _instructions(text):
        if ins.keyword == "FROM":
            words = ins.text.split()
            words = [w for w in words if not w.startswith("--platform")]
            base = _expand(words[0], args)
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(base, name))
        elif not stages and ins.keyword == "ARG":
            key, _, value = ins.text.partition("=")
            args[key.strip()] = value.strip()
        elif stages:
            stages[-1].instructions.append(ins)
        elif ins.keyword != "ARG":
            raise ValueError(f"line {ins.line}: {ins.keyword} before the first FROM")
    return args, stages


def _expand(word: str, args: dict[str, str]) -> str:
    for key, value in args.items():
        word = word.replace("${" + key + "}", value).replace("$" + key, value)
    return word


def _instructions(text: str) -> list[Instruction]:
    result: list[Instruction] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if buffer and line.startswith("#"):
            continue
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        keyword, _, rest = buffer.partition(" ")
        result.append(Instruction(keyword.upper(), rest.strip(), start))
        buffer = ""
    if buffer:
        raise ValueError(f"line {start}: a continuation runs past the end of the file")
    return result


def exec_form(ins: Instruction) -> list[str]:
    value = json.loads(ins.text)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"line {ins.line}: {ins.keyword} must be a JSON list of strings")
    return value


def env_values(stage: Stage) -> dict[str, str]:
    """Variables the stage's ENV instructions set (key=value form, several per line)."""
    values = {}
    for ins in stage.all("ENV"):
        for pair in shlex.split(ins.text):
            if "=" not in pair:
                raise ValueError(f"line {ins.line}: use ENV KEY=value")
            key, value = pair.split("=", 1)
            values[key] = value
    return values


def image_problems(text: str) -> list[str]:
    """Problems of the eventfleet Dockerfile (empty: fine)."""
    try:
        _, stages = parse(text)
    except ValueError as e:
        return [str(e)]
    if len(stages) < 2:
        return ["the image must be multi-stage: build the wheel apart from the runtime"]
    final = stages[-1]
    problems = _user_problems(final) + _entry_problems(final)
    names = {s.name for s in stages}
    for stage in stages:
        for ins in stage.all("COPY") + stage.all("RUN"):
            for word in ins.text.split():
                if word.startswith(("--from=", "--mount=")) and "from=" in word:
                    source = word.split("from=", 1)[1].split(",", 1)[0]
                    if source not in names:
                        problems.append(f"line {ins.line}: stage {source!r} does not exist")
    problems += _env_problems(final)
    if not final.base.startswith("python:3.11") or "slim" not in final.base:
        problems.append(f"the runtime base is {final.base}; use python:3.11-slim")
    return problems + _copy_problems(stages[0])


def _env_problems(final: Stage) -> list[str]:
    env = {k: v for k, v in env_values(final).items() if k.startswith("EVENTFLEET_")}
    problems = [
        f"ENV {name} is not a setting (workers/runtime/settings/)"
        for name in env
        if name not in setting_names()
    ]
    try:
        settings = Settings.from_env(env)
    except ConfigError as e:
        return [*problems, f"ENV: {e}"]
    if settings.http_host != "0.0.0.0":
        problems.append("ENV EVENTFLEET_HTTP_HOST must be 0.0.0.0 in a container")
    exposed = {word.split("/")[0] for ins in final.all("EXPOSE") for word in ins.text.split()}
    if str(settings.http_port) not in exposed:
        problems.append(f"EXPOSE {settings.http_port} (EVENTFLEET_HTTP_PORT) is missing")
    return problems + _operator_port_problems(final, settings, exposed)


def _operator_port_problems(final: Stage, settings: Settings, exposed: set[str]) -> list[str]:
    """The operator's port, when the image sets one, is exposed, apart from the API's, and is
    where the healthcheck asks (the API's port then serves no /healthz)."""
    port = settings.operator_port
    if port is None:
        return []
    problems = []
    if port == settings.http_port:
        problems.append(f"EVENTFLEET_OPERATOR_PORT {port} must differ from EVENTFLEET_HTTP_PORT")
    if str(port) not in exposed:
        problems.append(f"EXPOSE {port} (EVENTFLEET_OPERATOR_PORT) is missing")
    checks = " ".join(ins.text for ins in final.all("HEALTHCHECK"))
    if "/healthz" not in checks or "EVENTFLEET_OPERATOR_PORT" not in checks:
        problems.append(
            "HEALTHCHECK must GET /healthz on EVENTFLEET_OPERATOR_PORT: the API's port serves none"
        )
    return problems


def _user_problems(final: Stage) -> list[str]:
    users = final.all("USER")
    if not users:
        return ["the runtime stage never sets USER: the image would run as root"]
    user = users[-1].text.split(":")[0]
    if user in ("root", "0") or not user.isdigit():
        return [f"USER {users[-1].text}: use a numeric non-root uid (runAsNonRoot checks it)"]
    return []


def _entry_problems(final: Stage) -> list[str]:
    entry, cmd = final.all("ENTRYPOINT"), final.all("CMD")
    if not entry or not cmd:
        return ["the runtime stage needs ENTRYPOINT and CMD in exec form"]
    entrypoint = exec_form(entry[-1])
    if entrypoint != ["eventfleet"] or "eventfleet" not in console_scripts():
        return [f"ENTRYPOINT {entrypoint} must be the console script `eventfleet` from pyproject"]
    return [f"CMD: {p}" for p in check_command(exec_form(cmd[-1]))]


def _copy_problems(build: Stage) -> list[str]:
    """The build stage copies pyproject, its readme and every package setuptools includes."""
    copied = {
        word.removeprefix("./").rstrip("/")
        for ins in build.all("COPY")
        for word in ins.text.split()
        if not word.startswith("--")
    }
    tool = pyproject()["tool"]
    assert isinstance(tool, dict)
    packages = [p.rstrip("*") for p in tool["setuptools"]["packages"]["find"]["include"]]
    project = pyproject()["project"]
    assert isinstance(project, dict)
    needed = {
        "pyproject.toml",
        "constraints.txt",
        str(project.get("readme", "pyproject.toml")),
        *packages,
    }
    problems = [f"the build stage never copies {name}" for name in sorted(needed - copied)]
    pinned = any(
        "--constraint constraints.txt" in ins.text or "-c constraints.txt" in ins.text
        for ins in build.all("RUN")
        if "pip wheel" in ins.text or "pip install" in ins.text
    )
    if not pinned:
        problems.append("the build stage must resolve with --constraint constraints.txt")
    return problems
