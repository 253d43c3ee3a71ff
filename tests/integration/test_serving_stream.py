"""`stream=True` through the official openai client against `llmops serve` (a real process).

The champion's model is the local OpenAI-compatible test server, itself streaming chunk by
chunk; a pause between its chunks (`stream_delay_s`) makes a client's early close land while
the answer is still being generated.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai

from tests.integration.test_serving import TOKEN, exchanges, served  # noqa: F401 (fixture)

QUESTION = "How do I clean the tent?"


def stream_once(url: str, question: str = QUESTION) -> tuple[list[str], object, list[object]]:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=TOKEN, max_retries=0)
    chunks = list(client.chat.completions.create(
        model="champion", messages=[{"role": "user", "content": question}], stream=True,
        stream_options={"include_usage": True}))
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    usage = next(c.usage for c in chunks if c.usage is not None)
    return texts, usage, chunks


def records_of(home: Path) -> list[dict]:
    return [r for r in exchanges(home) if r["type"] == "exchange"]


def wait_for(home: Path, count: int, timeout_s: float = 15.0) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        path = home / "production" / "exchanges.jsonl"
        records = records_of(home) if path.exists() else []
        if len(records) >= count or time.monotonic() > deadline:
            return records
        time.sleep(0.1)


def test_a_streamed_answer_is_logged_whole_and_a_cut_stream_once(served, isolated_home,  # noqa: F811
                                                                  openai_env) -> None:
    url, _ = served
    texts, usage, chunks = stream_once(url)
    assert len(texts) >= 2
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    first = chunks[0]
    assert first.choices[0].delta.role == "assistant"
    assert first.model_extra["llmops"]["candidate_id"].startswith("grounded_concise@")
    assert first.model_extra["llmops"]["context_doc_ids"]
    assert chunks[-2].choices[0].finish_reason in ("stop", "length") and chunks[-1].choices == []
    [record] = wait_for(isolated_home, 1)
    assert record["answer"] == "".join(texts).strip()
    assert record["id"] == first.id and record["stream"] is True and record["cut"] is False
    assert record["ttft_ms"] > 0 and record["output_tokens"] == usage.completion_tokens
    assert {"lookup", "retrieve", "render", "chat"} <= set(record["stages_ms"])

    # A client that closes after the first content chunk: one record, marked cut.
    openai_env.stream_delay_s = 0.1
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=TOKEN, max_retries=0)
    with client.chat.completions.create(
            model="champion", stream=True,
            messages=[{"role": "user", "content": "Which fuel does the stove use?"}]) as stream:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                cut_id, said = chunk.id, chunk.choices[0].delta.content
                break
    assert len(wait_for(isolated_home, 2)) >= 2
    time.sleep(1.0)  # long enough for a second record of the same exchange to show up
    cut = [r for r in records_of(isolated_home) if r["id"] == cut_id]
    assert len(cut) == 1, cut
    assert cut[0]["cut"] is True and cut[0]["answer"].startswith(said.strip())
    assert cut[0]["finish_reason"] == "cut"

    # The server is still whole: the next stream completes.
    openai_env.stream_delay_s = 0.0
    texts, _, _ = stream_once(url)
    assert texts and len(wait_for(isolated_home, 3)) == 3


def test_twenty_concurrent_streams_all_complete(served, isolated_home, openai_env) -> None:  # noqa: F811
    url, _ = served
    openai_env.stream_delay_s = 0.01
    questions = [f"{QUESTION} ({i})" for i in range(20)]
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda q: stream_once(url, q), questions))
    assert all(len(texts) >= 2 for texts, _, _ in results)
    records = wait_for(isolated_home, 20)
    assert len(records) == 20 and not any(r["cut"] for r in records)
    by_question = {r["question"]: r["answer"] for r in records}
    for question, (texts, _, _) in zip(questions, results, strict=True):
        assert by_question[question] == "".join(texts).strip()
