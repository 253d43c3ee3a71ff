"""Prompty files: YAML front matter + a Jinja2 body split into role messages; hashed as versions."""

from __future__ import annotations

import functools
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import yaml

from llmops_pipelines.errors import PromptError
from llmops_pipelines.hashing import content_hash
from llmops_pipelines.prompts.sandbox import (
    BUDGET,
    LENIENT_ENV,
    MAX_RENDER_CHARS,
    MAX_RENDER_SECONDS,
    STRICT_ENV,
    Budget,
    References,
    RenderStopped,
    bounded,
    check_prompt_name,
    injection_hits,
    name_slug,
    safe_name,
)

__all__ = ["Message", "Prompt", "check_prompt_name", "injection_hits", "load_prompt",
           "load_prompts", "name_slug", "safe_name", "split_roles"]

# One chat message, {'role': ..., 'content': ...}: what prompts render and providers send.
Message = dict[str, str]

ROLE_LINE = re.compile(r"^\s*#?\s*(system|user|assistant)\s*:\s*$", re.IGNORECASE | re.MULTILINE)
# Names a template may use without declaring them: Jinja's own globals.
_JINJA_GLOBALS = {"range", "dict", "lipsum", "cycler", "joiner", "namespace", "loop"}

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
        budget = Budget(time.monotonic() + MAX_RENDER_SECONDS)
        token = BUDGET.set(budget)
        try:
            parts, size = [], 0
            for part in _compiled(self.template, self.strict).generate(**_defuse(merged, mark)):
                size += len(part)
                if size > MAX_RENDER_CHARS:
                    raise RenderStopped(f"more than {MAX_RENDER_CHARS} characters of output")
                budget.clock()
                parts.append(part)
            text = "".join(parts)
        except RenderStopped as exc:
            raise PromptError(f"{self.path}: rendering stopped: {exc} (the render limit)") from None
        except jinja2.TemplateError as exc:
            raise PromptError(f"{self.path}: rendering failed: {exc}") from exc
        finally:
            BUDGET.reset(token)
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
    return bounded(STRICT_ENV if strict else LENIENT_ENV, template)


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
        parsed = STRICT_ENV.parse(body)
    except jinja2.TemplateSyntaxError as exc:
        raise PromptError(f"{path}:{(exc.lineno or 0) + body_offset}: Jinja syntax error: "
                          f"{exc.message}") from exc
    inputs = meta.get("inputs") or {}
    if not isinstance(inputs, dict):
        raise PromptError(f"{path}: 'inputs' must be a mapping of name -> spec")
    refs = References(path, text, tuple(env_allow))
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
