"""Many concurrent requests: 1,000 tasks each ``await compiled.infer(...)``.

The compiled model lends its pooled requests in FIFO order; callers beyond the pool wait
(bounded by ``MAX_QUEUED_REQUESTS``), and each gets its own result. We check every answer
against numpy and print the pool's statistics.

    python examples/many_concurrent_requests.py
"""

from __future__ import annotations

import time

import anyio
import numpy as np

import aioplug
from aioplug.testing.models import add_model


async def main() -> None:
    n = 1000
    b = np.arange(4, dtype=np.float32).reshape(1, 4)
    results: dict[int, np.ndarray] = {}

    async with aioplug.Core() as core:
        compiled = await core.compile_model(add_model(), properties={"PERFORMANCE_HINT": "THROUGHPUT"})

        async def one(i: int) -> None:
            a = np.full((1, 4), i, dtype=np.float32)
            out = await compiled.infer({"a": a, "b": b})
            results[i] = out["y"]

        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(one, i)
        elapsed = time.perf_counter() - start
        stats = compiled.statistics()

    wrong = [i for i, y in results.items() if not np.array_equal(y, i + b)]
    print(f"{n} concurrent infers in {elapsed * 1e3:.1f} ms ({n / elapsed:,.0f}/s), wrong answers: {len(wrong)}")
    print(f"pool: {stats.pool.created} requests created for {n} callers")


if __name__ == "__main__":
    anyio.run(main, backend_options={"use_uvloop": True})
