"""The prompt sandbox: references that stay in the prompt's folder, env only when allowed,
names safe for paths, and a render budget (loop steps, output size, time, huge products)."""

from __future__ import annotations

import contextvars
import json
import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.nodes
import jinja2.sandbox

from llmops_pipelines.errors import PromptError

REFERENCE = re.compile(r"^\$\{(env|file):([^}]+)\}$", re.IGNORECASE)
# A prompt renders for every evaluation row and every served request: one file with nested huge
# loops or a huge product must fail that render, never hang the run or fill the memory.
MAX_RENDER_CHARS = 1_000_000
MAX_RENDER_SECONDS = 10.0
MAX_LOOP_STEPS = 1_000_000
MAX_POWER = 1_000  # the largest exponent `**` may use on a number other than 0, 1 or -1
# Ids that travel in a path (deployment ids): no separator, no "..".
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# A prompt's name is free text (third-party files say "Contoso Chat Prompt") but never a path:
# no separator, no character a file system refuses, no leading dot, at most 100 characters.
UNSAFE_IN_NAME = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')
# Environment variables a prompt never reads, whatever the allow-list says.
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|WEBHOOK|AUTH|COOKIE|SESSION|PRIVATE",
                         re.IGNORECASE)
# Prompt-injection phrasings (a labelled heuristic: phrases, not intent), flagged wherever user
# text enters: curated questions and documents, the eval set the harm metric reports on.
INJECTION = {
    "ignore_instructions": re.compile(
        r"\b(ignore|disregard|forget|override|bypass|skip)\b[^.\n]{0,40}?\b(previous|prior|above|"
        r"earlier|preceding|all|your|system|original)\b[^.\n]{0,20}?\b(instructions?|prompts?|"
        r"rules|directions|guidelines|context)\b", re.IGNORECASE),
    "reveal_prompt": re.compile(
        r"\b(reveal|print|show|repeat|output|leak|display|tell me)\b[^.\n]{0,30}?\b(system prompt|"
        r"hidden prompt|initial prompt|developer message|your (instructions|rules|prompt))\b",
        re.IGNORECASE),
    "role_override": re.compile(r"\byou are now\b|\bact as (dan|an? unrestricted)\b|"
                                r"\bdeveloper mode\b|\bjailbreak", re.IGNORECASE),
}
_STEPS = "__llmops_loop_steps"


def injection_hits(text: str) -> list[str]:
    """The prompt-injection patterns a text matches (empty for ordinary text)."""
    return [name for name, pattern in INJECTION.items() if pattern.search(text or "")]


def safe_name(name: str, *, what: str) -> str:
    """The name itself when it can be a file name on every OS; else a PromptError naming `what`."""
    if not isinstance(name, str) or not SAFE_NAME.match(name) or ".." in name:
        raise PromptError(f"{what} {name!r} cannot be used in a path: expected letters, digits, "
                          "'.', '_' or '-' (at most 100, no '..', no '/')")
    return name


def check_prompt_name(name: str) -> str:
    """The name when it could never climb out of a folder as a file name; else a PromptError."""
    if UNSAFE_IN_NAME.search(name) or name.startswith(".") or not name.strip() or len(name) > 100:
        raise PromptError(f"prompt name {name!r} cannot be used as a file name: no '/', '\\', "
                          "':', control characters or leading '.', at most 100 characters")
    return name


def name_slug(name: str) -> str:
    """A file-name form of a prompt name (letters, digits, '.', '_', '-')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:100] or "prompt"


class RenderStopped(Exception):
    """A render over its budget (caught in Prompt.render and turned into a PromptError)."""


@dataclass
class Budget:
    deadline: float
    steps: int = 0

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_LOOP_STEPS:
            raise RenderStopped(f"more than {MAX_LOOP_STEPS} loop steps")
        if self.steps % 1000 == 0:
            self.clock()

    def clock(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderStopped(f"more than {MAX_RENDER_SECONDS:g} s")


BUDGET: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("render_budget",
                                                                         default=None)


def _counted(iterable: Iterable[Any]) -> Iterator[Any]:
    for item in iterable:
        budget = BUDGET.get()
        if budget is not None:
            budget.step()
        yield item


def _size(value: Any) -> int | None:
    return len(value) if isinstance(value, str | list | tuple) else None


class _BoundedEnvironment(jinja2.sandbox.SandboxedEnvironment):
    """The sandbox, plus a budget: `*` and `**` cannot build giants, every loop step is counted."""

    # Intercepted operators are also never folded at compile time (the sandbox's own rule).
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                n = _size(seq)
                if n is not None and isinstance(times, int) and n * times > MAX_RENDER_CHARS:
                    raise RenderStopped(f"a {type(seq).__name__} of {n} x {times} would be more than "
                                f"{MAX_RENDER_CHARS} characters")
        if (operator == "**" and isinstance(right, int) and abs(right) > MAX_POWER
                and not (isinstance(left, int | float) and abs(left) <= 1)):
            raise RenderStopped(f"an exponent of {right} is over the limit of {MAX_POWER}")
        return super().call_binop(context, operator, left, right)


def _environment(undefined: type[jinja2.Undefined]) -> _BoundedEnvironment:
    env = _BoundedEnvironment(undefined=undefined, keep_trailing_newline=True)
    env.globals[_STEPS] = _counted
    return env


STRICT_ENV = _environment(jinja2.StrictUndefined)
# Prompty's own runtime renders unknown names (and their attributes) as empty: lenient mode does too,
# for third-party prompts; our own prompts load strict.
LENIENT_ENV = _environment(jinja2.ChainableUndefined)


def bounded(env: jinja2.Environment, template: str) -> jinja2.Template:
    """The template compiled so every `for` steps through the budget, even one printing nothing."""
    tree = env.parse(template)
    for loop in tree.find_all(jinja2.nodes.For):
        loop.iter = jinja2.nodes.Call(jinja2.nodes.Name(_STEPS, "load"), [loop.iter], [], None,
                                      None).set_lineno(loop.lineno).set_environment(env)
    return env.from_string(tree)


@dataclass(frozen=True)
class References:
    """Resolves ${env:NAME} and ${file:relative/path} in front matter, inside the prompt's sandbox."""

    path: Path
    text: str
    env_allow: tuple[str, ...] = ()

    def line(self, needle: str) -> int:
        """The file line holding needle (the reference as written), else 1."""
        lowered = needle.lower()
        return next((i for i, line in enumerate(self.text.split("\n"), start=1)
                     if lowered in line.lower()), 1)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        match = REFERENCE.match(value) if isinstance(value, str) else None
        if not match:
            return value
        kind, ref = match.group(1).lower(), match.group(2).strip()
        where = f"{self.path}:{self.line(f'{match.group(1)}:{match.group(2)}')}: ${{{kind}:{ref}}}"
        if kind == "env":
            return self._env(ref, where)
        return self._file(ref, where)

    def _env(self, ref: str, where: str) -> str:
        name, _, default = ref.partition(":")  # ${env:NAME:default}
        name = name.strip()
        # Errors name the variable, never its value: a message can reach logs and run storage.
        if SECRET_NAME.search(name):
            raise PromptError(f"{where}: {name} looks like a secret (key, token, password, "
                              "credentials): prompts never read secrets, even when allowed")
        if name not in self.env_allow:
            raise PromptError(f"{where}: {name} is not in LLMOPS_PROMPT_ENV_ALLOW (empty by "
                              "default); list it there if prompts may read it")
        return os.environ.get(name, default)

    def _file(self, ref: str, where: str) -> Any:
        base = self.path.parent.resolve()
        if Path(ref).is_absolute():
            raise PromptError(f"{where}: an absolute path points outside the prompt's folder "
                              f"{base}; use a path relative to it")
        target = (base / ref).resolve()  # follows links, so a link out is caught too
        if not target.is_relative_to(base):
            raise PromptError(f"{where}: points outside the prompt's folder {base}; references "
                              "must stay inside it")
        if not target.is_file():
            raise PromptError(f"{where}: points to a missing file {target}")
        text = target.read_text(encoding="utf-8")
        return json.loads(text) if target.suffix == ".json" else text

