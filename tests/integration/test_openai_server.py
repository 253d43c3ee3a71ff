"""The fake OpenAI server, exercised through the official client exactly as the pipeline uses it."""

from __future__ import annotations

import base64
import io
import json
import math
import struct
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from tests.support.openai_server import FakeOpenAIServer

CONTEXT_PROMPT = (
    "Answer from the context.\n<context>\n[doc-1] The Trailblazer tent sleeps four people. "
    "It weighs 3 kg.\n[doc-2] Returns are accepted within 30 days.\n</context>\nQuestion: how many?"
)


def make_client(server: FakeOpenAIServer, **kwargs: object) -> openai.OpenAI:
    options: dict[str, object] = {"max_retries": 0, **kwargs}
    return openai.OpenAI(base_url=server.base_url, api_key="test-key", **options)  # type: ignore[arg-type]


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
        sum(x * x for x in a) * sum(y * y for y in b))


def test_chat_answers_first_sentence_of_context_with_usage() -> None:
    with FakeOpenAIServer() as server, make_client(server) as client:
        messages = [{"role": "system", "content": "Be brief."},
                    {"role": "user", "content": CONTEXT_PROMPT}]
        response = client.chat.completions.create(model="gpt-test", messages=messages)  # type: ignore[arg-type]

        assert response.choices[0].message.content == "The Trailblazer tent sleeps four people."
        assert response.choices[0].finish_reason == "stop"
        assert response.model == "gpt-test"
        prompt_tokens = sum(len(m["content"].split()) + 4 for m in messages)
        assert response.usage is not None
        usage = response.usage
        assert (usage.prompt_tokens, usage.completion_tokens) == (prompt_tokens, 6)
        assert usage.total_tokens == prompt_tokens + 6

        plain = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}])
        assert plain.choices[0].message.content == "I don't know."
        empty = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "<context>  </context> q"}])
        assert empty.choices[0].message.content == "I don't know."
        short = client.chat.completions.create(model="m", messages=messages, max_tokens=2)  # type: ignore[arg-type]
        assert short.choices[0].message.content == "The Trailblazer"

        judge = [{"role": "user", "content": "Rate this answer."}]
        scores = {json.loads(client.chat.completions.create(
            model="judge", messages=judge, response_format={"type": "json_object"},  # type: ignore[arg-type]
        ).choices[0].message.content or "")["score"] for _ in range(3)}
        assert len(scores) == 1 and scores <= {1, 2, 3, 4, 5}

        assert server.counts["chat"] == 7
        assert server.requests[0] == ("chat", {"model": "gpt-test", "messages": messages})
        models = {m.id for m in client.models.list()}
        assert models >= {"fake-chat", "fake-embed", "gpt-test", "judge"}


def test_streaming_with_usage_and_connection_reuse() -> None:
    with FakeOpenAIServer() as server, make_client(server) as client:
        stream = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": CONTEXT_PROMPT}], stream=True,
            stream_options={"include_usage": True})
        chunks = list(stream)

        assert chunks[0].choices[0].delta.role == "assistant"
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "The Trailblazer tent sleeps four people."
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
        assert chunks[-1].choices == [] and chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens == 6
        # The chunked stream must leave the connection usable for the next plain request.
        again = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}])
        assert again.choices[0].message.content == "I don't know."
        assert server.counts["chat"] == 2


def test_embeddings_base64_and_float_agree_and_rank_by_shared_words() -> None:
    texts = ["the tent sleeps four people", "how many people does the tent sleep",
             "refund policy for returns"]
    with FakeOpenAIServer(embedding_dim=64) as server, make_client(server) as client:
        # With no encoding_format the client asks for base64 and decodes it itself.
        implicit = [d.embedding for d in client.embeddings.create(model="emb", input=texts).data]
        floats = [d.embedding for d in
                  client.embeddings.create(model="emb", input=texts, encoding_format="float").data]
        raw = client.embeddings.create(model="emb", input=texts, encoding_format="base64").data
        decoded = [list(struct.unpack("<64f", base64.b64decode(d.embedding))) for d in raw]  # type: ignore[arg-type]

        assert implicit == floats == decoded
        for vector in floats:
            assert len(vector) == 64 and math.isclose(sum(x * x for x in vector), 1.0, rel_tol=1e-5)
        assert cosine(floats[0], floats[1]) > cosine(floats[0], floats[2]) + 0.2
        sized = client.embeddings.create(
            model="emb", input="tent", dimensions=8, encoding_format="float")
        assert len(sized.data[0].embedding) == 8
        assert [key for key, _ in server.requests] == ["embeddings"] * 4
        assert server.requests[0][1]["encoding_format"] == "base64"


def test_moderation_flags_lexicon_words() -> None:
    with FakeOpenAIServer() as server, make_client(server) as client:
        result = client.moderations.create(
            input=["I will attack the camp", "A lovely hike", "I hate it"])
        violent, calm, hateful = result.results

        assert (violent.flagged, calm.flagged, hateful.flagged) == (True, False, True)
        assert violent.categories.violence and not violent.categories.hate
        assert violent.category_scores.violence == 0.9 and calm.category_scores.violence == 0.01
        assert hateful.categories.hate and not hateful.categories.self_harm
        assert result.model == "omni-moderation-latest" and result.id.startswith("modr-")
        assert server.counts["moderations"] == 1


def test_requests_without_bearer_token_get_401() -> None:
    with FakeOpenAIServer() as server:
        request = urllib.request.Request(f"{server.base_url}/models")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=5)
        assert info.value.code == 401
        assert json.loads(info.value.read())["error"]["code"] == "invalid_api_key"
        assert server.attempts["models"] == 1 and server.counts["models"] == 0


def test_fail_first_is_an_internal_error_that_retries_recover() -> None:
    messages = [{"role": "user", "content": "hi"}]
    with FakeOpenAIServer(fail_first=1) as server, make_client(server) as client:
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m", messages=messages)  # type: ignore[arg-type]
        assert client.chat.completions.create(model="m", messages=messages)  # type: ignore[arg-type]
    with FakeOpenAIServer(fail_first=1) as server, make_client(server, max_retries=2) as client:
        client.chat.completions.create(model="m", messages=messages)  # type: ignore[arg-type]
        assert (server.attempts["chat"], server.counts["chat"]) == (2, 1)
        server.reset()
        assert not server.attempts and not server.counts and not server.requests


def test_rate_limit_is_429_with_retry_after_that_the_client_honours() -> None:
    with FakeOpenAIServer(rate_limit_rps=20) as server:
        with make_client(server) as client, pytest.raises(openai.RateLimitError) as info:
            for _ in range(100):  # the bucket holds 20 and refills slowly next to this loop
                client.models.list()
        assert 20 <= server.counts["models"] < 100
        headers = info.value.response.headers
        assert 0 < float(headers["retry-after"]) <= 0.1 and int(headers["retry-after-ms"]) >= 1
        assert info.value.code == "rate_limit_exceeded"
        server.reset()
        with make_client(server, max_retries=3) as patient:
            started = time.monotonic()
            for _ in range(5):  # the bucket is empty: each call is refused once, then retried
                patient.models.list()
            # Retry-After (~50 ms) was honoured; exponential backoff would take 0.5 s per retry.
            assert time.monotonic() - started < 1.0
        assert server.counts["models"] == 5 and server.attempts["models"] > 5


def test_hang_makes_a_short_client_timeout_fire() -> None:
    with FakeOpenAIServer(hang_rate=1.0, hang_s=5.0) as server, \
            make_client(server, timeout=0.5) as client:
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            client.embeddings.create(model="emb", input="x")
        assert time.monotonic() - started < 2.0
        assert server.counts["embeddings"] == 0


def test_latency_is_per_request_and_concurrent_requests_overlap() -> None:
    with FakeOpenAIServer(latency_s=0.2) as server, make_client(server) as client:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda i: client.embeddings.create(model="emb", input=str(i)), range(8)))
        assert 0.2 <= time.monotonic() - started < 0.8
        assert server.counts["embeddings"] == 8


def test_finetune_success_flow() -> None:
    data = b'{"messages": [{"role": "user", "content": "hi there"}]}\n'
    with FakeOpenAIServer(finetune_steps=2) as server, make_client(server) as client:
        uploaded = client.files.create(file=("train.jsonl", io.BytesIO(data)), purpose="fine-tune")
        assert server.files[uploaded.id] == data and uploaded.filename == "train.jsonl"

        job = client.fine_tuning.jobs.create(
            model="gpt-4o-mini", training_file=uploaded.id, suffix="tents")
        assert job.status == "validating_files" and job.fine_tuned_model is None
        statuses = [client.fine_tuning.jobs.retrieve(job.id).status for _ in range(3)]
        assert statuses == ["running", "running", "succeeded"]

        done = client.fine_tuning.jobs.retrieve(job.id)
        assert done.fine_tuned_model == f"ft:gpt-4o-mini:fake:tents:{job.id[-6:]}"
        assert done.trained_tokens == len(data.split()) and done.finished_at is not None
        events = client.fine_tuning.jobs.list_events(job.id, limit=50).data
        assert len(events) == 3 and "completed" in events[0].message  # newest first
        assert [j.id for j in client.fine_tuning.jobs.list()] == [job.id]
        assert done.fine_tuned_model in {m.id for m in client.models.list()}

        with pytest.raises(openai.BadRequestError):
            client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file="file-missing")
        with pytest.raises(openai.NotFoundError):
            client.fine_tuning.jobs.retrieve("ftjob-nope")


def test_finetune_failure_and_cancel_flows() -> None:
    with FakeOpenAIServer(finetune_steps=0, finetune_outcome="failed") as server, \
            make_client(server) as client:
        uploaded = client.files.create(file=("t.jsonl", io.BytesIO(b"{}\n")), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=uploaded.id)
        failed = client.fine_tuning.jobs.retrieve(job.id)
        assert failed.status == "failed" and failed.fine_tuned_model is None
        assert failed.error is not None and failed.error.code == "invalid_training_file"

        other = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=uploaded.id)
        assert client.fine_tuning.jobs.cancel(other.id).status == "cancelled"
        assert client.fine_tuning.jobs.retrieve(other.id).status == "cancelled"
        assert server.jobs[other.id]["status"] == "cancelled"
