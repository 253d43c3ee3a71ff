"""Micro-batching for the per-row metric calls: many rows' texts, one embeddings/moderation call.

Rows are scored as they finish, each asking for a handful of embeddings; asking the endpoint
once per row would cost a round trip per row. A batcher gathers what concurrent rows ask for
(up to `max_batch` texts, or what arrived within `linger_s`), makes one call, and remembers
recent results (bounded, LRU) because contexts repeat across candidates.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class MicroBatcher(Generic[T]):
    """`await batcher.get(texts)` -> one result per text, from batched calls of `call`."""

    def __init__(self, call: Callable[[list[str]], Awaitable[Sequence[T]]], *, max_batch: int = 256,
                 linger_s: float = 0.02, memo_size: int = 20_000) -> None:
        self._call = call
        self.max_batch, self.linger_s, self.memo_size = max_batch, linger_s, memo_size
        self._memo: OrderedDict[str, T] = OrderedDict()
        self._waiting: dict[str, asyncio.Future[T]] = {}
        self._pending: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._flushes: set[asyncio.Task[None]] = set()
        self.calls = 0

    async def get(self, texts: Sequence[str]) -> list[T]:
        futures = [self._future(t) for t in texts]
        return list(await asyncio.gather(*futures)) if futures else []

    def _future(self, text: str) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        if text in self._memo:
            self._memo.move_to_end(text)
            done: asyncio.Future[T] = loop.create_future()
            done.set_result(self._memo[text])
            return done
        if text not in self._waiting:  # the same text asked twice waits on one call
            self._waiting[text] = loop.create_future()
            self._pending.append(text)
            if len(self._pending) >= self.max_batch:
                self._flush()
            elif self._timer is None:
                self._timer = loop.call_later(self.linger_s, self._flush)
        return self._waiting[text]

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._pending:
            batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._flushes.add(task)  # a reference, so the task is not collected mid-flight
            task.add_done_callback(self._flushes.discard)

    async def _run(self, batch: list[str]) -> None:
        self.calls += 1
        try:
            results = list(await self._call(batch))
            if len(results) != len(batch):
                raise ValueError(f"batched call returned {len(results)} results for "
                                 f"{len(batch)} inputs")
        except Exception as exc:  # every waiter gets the error, and decides what it means
            for text in batch:
                future = self._waiting.pop(text)
                if not future.done():
                    future.set_exception(exc)
                    future.exception()  # marks it retrieved: a waiter may have timed out
            return
        except BaseException:  # cancelled (the run is shutting down): so are the waiters
            for text in batch:
                self._waiting.pop(text).cancel()
            raise
        for text, result in zip(batch, results, strict=True):
            self._memo[text] = result
            future = self._waiting.pop(text)
            if not future.done():
                future.set_result(result)
        while len(self._memo) > self.memo_size:
            self._memo.popitem(last=False)
