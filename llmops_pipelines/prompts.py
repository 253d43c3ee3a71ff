"""Prompty files: YAML front matter + a Jinja2 body split into role messages; hashed as versions."""

from __future__ import annotations

import contextvars
import functools
import json
import os
import re
import secrets
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import jinja2.nodes
import jinja2.sandbox
import yaml

from llmops_pipelines.errors import PromptError
from llmops_pipelines.hashing import content_hash

# One chat message, {'role': ..., 'content': ...}: what prompts render and providers send.
Message = dict[str, str]

ROLE_LINE = re.compile(r"^\s*#?\s*(system|user|assistant)\s*:\s*$", re.IGNORECASE | re.MULTILINE)
REFERENCE = re.compile(r"^\$\{(env|file):([^}]+)\}$", re.IGNORECASE)
# Names a template may use without declaring them: Jinja's own globals.
_JINJA_GLOBALS = {"range", "dict", "lipsum", "cycler", "joiner", "namespace", "loop"}

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


class _Stop(Exception):
    """A render over its budget (caught in Prompt.render and turned into a PromptError)."""


@dataclass
class _Budget:
    deadline: float
    steps: int = 0

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_LOOP_STEPS:
            raise _Stop(f"more than {MAX_LOOP_STEPS} loop steps")
        if self.steps % 1000 == 0:
            self.clock()

    def clock(self) -> None:
        if time.monotonic() > self.deadline:
            raise _Stop(f"more than {MAX_RENDER_SECONDS:g} s")


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("render_budget",
                                                                         default=None)


def _counted(iterable: Iterable[Any]) -> Iterator[Any]:
    for item in iterable:
        budget = _BUDGET.get()
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
                    raise _Stop(f"a {type(seq).__name__} of {n} x {times} would be more than "
                                f"{MAX_RENDER_CHARS} characters")
        if (operator == "**" and isinstance(right, int) and abs(right) > MAX_POWER
                and not (isinstance(left, int | float) and abs(left) <= 1)):
            raise _Stop(f"an exponent of {right} is over the limit of {MAX_POWER}")
        return super().call_binop(context, operator, left, right)


def _environment(undefined: type[jinja2.Undefined]) -> _BoundedEnvironment:
    env = _BoundedEnvironment(undefined=undefined, keep_trailing_newline=True)
    env.globals[_STEPS] = _counted
    return env


_ENV = _environment(jinja2.StrictUndefined)
# Prompty's own runtime renders unknown names (and their attributes) as empty: lenient mode does too,
# for third-party prompts; our own prompts load strict.
_LENIENT_ENV = _environment(jinja2.ChainableUndefined)


@dataclass(frozen=True)
class Prompt:
    """A loaded prompt: its declared inputs, model parameters, template and content version."""

    name: str
    path: Path
    template: str
    inputs: dict[str, Any]
    parameters: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    sample: dict[str, Any] | None = None
    version: str = ""
    strict: bool = True
    undeclared: tuple[str, ...] = ()  # names the template uses without declaring (lenient only)

    @property
    def declared(self) -> set[str]:
        """Input names: those under `inputs:` and those the sample provides."""
        return set(self.inputs) | set(self.sample or {})

    def render(self, **values: Any) -> list[Message]:
        """The role messages for these inputs; strict: unknown or missing inputs are errors."""
        unknown = sorted(set(values) - self.declared)
        if unknown and self.strict:
            raise PromptError(f"{self.path}: unknown inputs {unknown}; "
                              f"declared: {sorted(self.declared)}")
        merged = {k: spec.get("default") for k, spec in self.inputs.items()
                  if isinstance(spec, dict) and "default" in spec}
        merged.update(values)
        missing = sorted(set(self.inputs) - set(merged))
        if missing and self.strict:
            raise PromptError(f"{self.path}: missing inputs {missing}")
        # Roles are split after rendering (Prompty's semantics: a template may write role lines
        # in a loop), so a question or a retrieved chunk holding a line "system:" would open a
        # role of its own: such lines in the inputs are marked first and restored after.
        mark = f"<{secrets.token_hex(6)}>"
        budget = _Budget(time.monotonic() + MAX_RENDER_SECONDS)
        token = _BUDGET.set(budget)
        try:
            parts, size = [], 0
            for part in _compiled(self.template, self.strict).generate(**_defuse(merged, mark)):
                size += len(part)
                if size > MAX_RENDER_CHARS:
                    raise _Stop(f"more than {MAX_RENDER_CHARS} characters of output")
                budget.clock()
                parts.append(part)
            text = "".join(parts)
        except _Stop as exc:
            raise PromptError(f"{self.path}: rendering stopped: {exc} (the render limit)") from None
        except jinja2.TemplateError as exc:
            raise PromptError(f"{self.path}: rendering failed: {exc}") from exc
        finally:
            _BUDGET.reset(token)
        return [{**m, "content": m["content"].replace(mark, "")}
                for m in split_roles(text, source=str(self.path))]


def _defuse(value: Any, mark: str) -> Any:
    if isinstance(value, str):
        # The mark goes right before the role word: `^\s*` may have started on an earlier line.
        return ROLE_LINE.sub(lambda m: m.string[m.start():m.start(1)] + mark
                             + m.string[m.start(1):m.end()], value)
    if isinstance(value, dict):
        return {k: _defuse(v, mark) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_defuse(v, mark) for v in value)
    return value


@functools.lru_cache(maxsize=256)
def _compiled(template: str, strict: bool) -> jinja2.Template:
    # Compiling costs ~2 ms; evaluation renders one template for every row (100k rows).
    env = _ENV if strict else _LENIENT_ENV
    tree = env.parse(template)
    # Every `for` iterates through the step counter, so nested loops meet the budget even when
    # they print nothing.
    for loop in tree.find_all(jinja2.nodes.For):
        loop.iter = jinja2.nodes.Call(jinja2.nodes.Name(_STEPS, "load"), [loop.iter], [], None,
                                      None).set_lineno(loop.lineno).set_environment(env)
    return env.from_string(tree)


def split_roles(text: str, *, source: str = "<prompt>") -> list[Message]:
    """Split rendered text on `system:`/`user:`/`assistant:` lines into chat messages."""
    marks = list(ROLE_LINE.finditer(text))
    if not marks:
        raise PromptError(f"{source}: no role section (a line 'system:' or 'user:') found")
    messages = []
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        content = text[mark.end():end].strip()
        if content:
            messages.append({"role": mark.group(1).lower(), "content": content})
    return messages


@dataclass(frozen=True)
class _References:
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


def _split_front_matter(text: str, path: Path) -> tuple[dict[str, Any], str, int]:
    if not text.startswith("---"):
        return {}, text, 0
    parts = text.split("\n---", 1)
    if len(parts) != 2:
        raise PromptError(f"{path}:1: front matter opened with '---' is never closed")
    header = parts[0][3:]
    try:
        meta = yaml.safe_load(header) or {}
    except yaml.YAMLError as exc:
        raise PromptError(f"{path}: invalid YAML front matter: {exc}") from exc
    if not isinstance(meta, dict):
        raise PromptError(f"{path}:1: front matter must be a mapping")
    body = parts[1].split("\n", 1)[1] if "\n" in parts[1] else ""
    return meta, body, header.count("\n") + 2


def _first_use(body: str, name: str, offset: int) -> int:
    """The file line of the first Jinja tag that mentions name (the top of the body if none)."""
    use = re.compile(rf"(\{{\{{|\{{%)[^}}]*\b{re.escape(name)}\b")
    return next((i + offset for i, line in enumerate(body.split("\n"), start=1) if use.search(line)),
                offset + 1)


def load_prompt(path: Path, *, strict: bool = True, env_allow: Iterable[str] = ()) -> Prompt:
    """Load, validate and hash one .prompty file; errors name the file and line.

    strict (our own prompts): the template may only use names declared under `inputs:` or given
    by the sample, and rendering rejects unknown or missing inputs. Lenient (third-party Prompty
    files): undeclared names render empty, as in Prompty's runtime, and are listed in `undeclared`.
    `${file:}` references stay inside the prompt's folder; `${env:}` reads only the variables in
    env_allow (LLMOPS_PROMPT_ENV_ALLOW), never a secret-looking one; the name must be path-safe.
    """
    path = Path(path)
    try:
        # A leading byte-order mark would hide the front matter: drop it.
        text = path.read_text(encoding="utf-8").removeprefix("\ufeff")
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptError(f"{path}: cannot read prompt: {exc}") from exc
    meta, body, body_offset = _split_front_matter(text, path)
    try:
        parsed = _ENV.parse(body)
    except jinja2.TemplateSyntaxError as exc:
        raise PromptError(f"{path}:{(exc.lineno or 0) + body_offset}: Jinja syntax error: "
                          f"{exc.message}") from exc
    inputs = meta.get("inputs") or {}
    if not isinstance(inputs, dict):
        raise PromptError(f"{path}: 'inputs' must be a mapping of name -> spec")
    refs = _References(path, text, tuple(env_allow))
    sample = refs.resolve(meta.get("sample"))
    declared = set(inputs) | set(sample if isinstance(sample, dict) else {}) | _JINJA_GLOBALS
    undefined = sorted(jinja2.meta.find_undeclared_variables(parsed) - declared)
    if undefined and strict:
        line = _first_use(body, undefined[0], body_offset)
        raise PromptError(f"{path}:{line}: template uses undeclared inputs {undefined}; "
                          "declare them under 'inputs:' (or give them in 'sample:')")
    model = meta.get("model") or {}
    if not isinstance(model, dict):
        raise PromptError(f"{path}: 'model' must be a mapping (api, configuration, parameters)")
    name = str(meta.get("name") or path.stem)
    try:
        check_prompt_name(name)
    except PromptError as exc:
        line = next((i for i, raw in enumerate(text.split("\n"), start=1)
                     if re.match(r"name\s*:", raw)), 1)
        raise PromptError(f"{path}:{line}: {exc} (field 'name')") from None
    return Prompt(
        name=name,
        path=path,
        template=body,
        inputs=inputs,
        # Only what we use is resolved: a third-party file's `configuration` (its endpoint,
        # ${env:AZURE_...}) is never read, so it never reads the environment either.
        parameters=dict(refs.resolve(model.get("parameters") or {})),
        description=str(meta.get("description") or ""),
        sample=sample if isinstance(sample, dict) else None,
        # The file bytes are the version: any edit, even to parameters, is a new prompt.
        version=content_hash(text, length=12),
        strict=strict,
        undeclared=tuple(undefined),
    )


def load_prompts(directory: Path, *, strict: bool = True,
                 env_allow: Iterable[str] = ()) -> list[Prompt]:
    """Every *.prompty under a directory, sorted by file name; none is an error."""
    files = sorted(Path(directory).glob("*.prompty"))
    if not files:
        raise PromptError(f"{directory}: no *.prompty files found")
    prompts = [load_prompt(f, strict=strict, env_allow=env_allow) for f in files]
    names = [p.name for p in prompts]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise PromptError(f"{directory}: prompt names must be unique, repeated: {dupes}")
    return prompts
