"""Pacing at a rate cap the test server enforces: every row answered, few 429s, counted at the server.

The bucket starts empty (no free burst) and only chat is capped. How close the run gets to the
cap is a rate, so it is measured by `python -m bench engine`, not asserted here.
"""

from __future__ import annotations

import pytest

from tests.integration.test_evaluation_engine import Harness, assert_one_row_each
from tests.support.openai_server import FakeOpenAIServer


@pytest.mark.parametrize("headers", [False, True], ids=["from-429s", "from-headers"])
def test_two_thousand_rows_at_a_50_rps_cap_lose_nothing_and_see_few_429s(
        headers: bool, tmp_path, monkeypatch) -> None:
    with FakeOpenAIServer(latency_s=0.2, rate_limit_rps=50, rate_limit_routes=("chat",),
                          bucket_starts_empty=True, rate_limit_headers=headers) as server:
        harness = Harness(server, tmp_path, monkeypatch, n=1000)
        rows = harness.run(concurrency=16)
    assert_one_row_each(rows, harness)
    assert rows["error"].isna().all()
    answered, refused = server.counts["chat"], server.faults["429:chat"]
    assert answered == harness.total == 2000
    # At most 2 % of the chat requests the server saw were refused.
    assert refused <= 0.02 * (answered + refused), (refused, answered)
    assert refused > 0  # the cap was really met (an empty bucket refuses the first burst)
