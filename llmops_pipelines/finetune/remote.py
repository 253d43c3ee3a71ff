"""OpenAI / Azure OpenAI fine-tuning: upload, create, poll with a deadline, re-attach, reuse."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai

from llmops_pipelines.errors import FineTuneError
from llmops_pipelines.finetune.training_file import MIN_EXAMPLES, validate_training_file
from llmops_pipelines.providers.endpoint_check import cause

TERMINAL = {"succeeded", "failed", "cancelled"}
# How servers without the route answer (Ollama, vLLM, llama.cpp): not found, or wrong method.
NO_API_STATUSES = (404, 405)


@dataclass(frozen=True)
class JobOutcome:
    job_id: str
    model_id: str
    trained_tokens: int | None
    reused: bool


def missing_finetune_api(client: Any, *,
                         capabilities: Collection[str] | None = None) -> str | None:
    """Why this endpoint cannot fine-tune (the skip reason), or None when it can.

    `capabilities`, when declared (e.g. by the model catalog), is trusted without a request;
    otherwise one GET fine_tuning/jobs decides. A rejected key or an unreachable server is
    not a missing API: it raises FineTuneError naming the endpoint.
    """
    url = client.base_url
    then = "the lifecycle goes on with the base model; LLMOPS_FINETUNE=off skips this check"
    if capabilities is not None:
        if "fine_tuning" in capabilities:
            return None
        return (f"endpoint {url} has no fine-tuning API (its declared capabilities "
                f"{sorted(capabilities)} lack fine_tuning); {then}")
    try:
        client.fine_tuning.jobs.list(limit=1)
    except openai.APIStatusError as exc:
        if exc.status_code in NO_API_STATUSES:
            return (f"endpoint {url} has no fine-tuning API (GET fine_tuning/jobs answered "
                    f"{exc.status_code}); {then}")
        if exc.status_code in (401, 403):
            raise FineTuneError(f"endpoint {url} refused the API key for fine-tuning "
                                f"({exc.status_code}): check OPENAI_API_KEY for this endpoint, "
                                "or set LLMOPS_FINETUNE=off") from exc
        # Anything else came from a fine-tuning route that exists: the job's own calls report it.
        return None
    except openai.APIConnectionError as exc:  # timeouts included
        raise FineTuneError(f"cannot reach {url} to check its fine-tuning API: {cause(exc)} "
                            "(is the server running, and is OPENAI_BASE_URL right?)") from exc
    return None


class RemoteFineTune:
    """One fine-tuned model per content key; the job id is persisted so a re-run re-attaches."""

    def __init__(self, client: Any, state_dir: Path, *, log: Callable[[str], None] = print,
                 poll_s: float = 5.0, max_poll_s: float = 60.0, deadline_s: float = 6 * 3600,
                 min_examples: int = MIN_EXAMPLES,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client, self.log, self.sleep, self.clock = client, log, sleep, clock
        self.state_path = Path(state_dir) / "jobs.json"
        self.poll_s, self.max_poll_s, self.deadline_s = poll_s, max_poll_s, deadline_s
        self.min_examples = min_examples

    def _state(self) -> dict[str, dict[str, Any]]:
        return json.loads(self.state_path.read_text()) if self.state_path.exists() else {}

    def _save(self, key: str, entry: dict[str, Any]) -> None:
        state = self._state()
        state[key] = entry
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_path)

    def run(self, training_file: Path | str, *, base_model: str,
            hyperparameters: dict[str, Any], suffix: str, key: str) -> JobOutcome:
        """The fine-tuned model for this content key: reused, re-attached, or trained anew."""
        entry = self._state().get(key, {})
        if entry.get("model_id"):
            self.log(f"reusing fine-tuned model {entry['model_id']} from job {entry['job_id']} "
                     "(same training data, base model and hyperparameters): no new job")
            return JobOutcome(entry["job_id"], entry["model_id"], entry.get("trained_tokens"), True)
        if entry.get("job_id") and entry.get("status") not in TERMINAL:
            self.log(f"re-attaching to job {entry['job_id']} (last seen {entry.get('status')})")
            return self._poll(entry["job_id"], key)
        # The last guard before money moves: a bad line is never uploaded.
        validate_training_file(training_file, min_examples=self.min_examples).raise_if_invalid(
            "not uploading, the training file is invalid")
        try:
            with open(training_file, "rb") as handle:
                uploaded = self.client.files.create(file=handle, purpose="fine-tune")
            # `hyperparameters` rather than the newer `method`: Azure OpenAI's GA API versions
            # and OpenAI both accept it.
            job = self.client.fine_tuning.jobs.create(
                model=base_model, training_file=uploaded.id, suffix=suffix,
                hyperparameters=hyperparameters)
        except openai.APIError as exc:
            raise FineTuneError(f"could not start a fine-tune of {base_model}: {exc}") from exc
        self._save(key, {"job_id": job.id, "file_id": uploaded.id, "status": job.status})
        self.log(f"created fine-tune job {job.id} on {base_model} (file {uploaded.id}, "
                 f"hyperparameters {hyperparameters}, suffix {suffix!r})")
        return self._poll(job.id, key)

    def _poll(self, job_id: str, key: str) -> JobOutcome:
        seen: set[str] = set()
        started, interval, last_event = self.clock(), self.poll_s, ""
        while True:
            try:
                job = self.client.fine_tuning.jobs.retrieve(job_id)
                events = self._new_events(job_id, seen)
            except openai.APIError as exc:
                raise FineTuneError(f"lost track of fine-tune job {job_id}: {exc}; the job id "
                                    "is saved, re-run to re-attach to it") from exc
            for event in events:
                seen.add(event.id)
                self.log(f"[{job_id}] {event.level}: {event.message}")
                last_event = event.message
            self._save(key, {**self._state().get(key, {}), "job_id": job_id, "status": job.status})
            if job.status == "succeeded":
                return self._succeeded(job, key)
            if job.status in ("failed", "cancelled"):
                # A cancelled job has no error object: its last event says who or what stopped it.
                message = (job.error.message if job.error and job.error.message else
                           last_event or "no message from the service")
                raise FineTuneError(f"fine-tune job {job_id} {job.status}: {message}; "
                                    "no model was produced")
            waited = self.clock() - started
            if waited >= self.deadline_s:
                raise FineTuneError(f"fine-tune job {job_id} still {job.status} after "
                                    f"{waited:.0f}s (deadline {self.deadline_s:.0f}s); "
                                    "re-run to re-attach to it")
            self.sleep(min(interval, self.deadline_s - waited))
            interval = min(interval * 2, self.max_poll_s)

    def _new_events(self, job_id: str, seen: set[str]) -> list[Any]:
        """Events not logged yet, oldest first: pages back (newest first) to the last one seen,
        so a burst of more than a page between two polls is not lost."""
        fresh = []
        for event in self.client.fine_tuning.jobs.list_events(job_id, limit=50):  # auto-pages
            if event.id in seen:
                break
            fresh.append(event)
        return fresh[::-1]

    def _succeeded(self, job: Any, key: str) -> JobOutcome:
        if not job.fine_tuned_model:
            raise FineTuneError(f"job {job.id} succeeded without a model id")
        self._save(key, {"job_id": job.id, "status": job.status, "model_id": job.fine_tuned_model,
                         "trained_tokens": job.trained_tokens})
        self.log(f"fine-tune job {job.id} succeeded: {job.fine_tuned_model}")
        return JobOutcome(job.id, job.fine_tuned_model, job.trained_tokens, False)
