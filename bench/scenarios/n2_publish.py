"""N2's floor: one PUBLISH at a time with redis-py, in a process of its own, like the relay.

``python -m bench.scenarios.n2_publish --url redis://… --count N --message-file F``
sends the message in F N times to a channel nobody listens to, each awaited
before the next, on one connection and asyncio's default loop (as
``roomcast relay`` runs), and prints one JSON line: PUBLISHes/s and its own CPU
per PUBLISH. A process of its own, so that nothing else the harness does is
counted in it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import msgspec
from redis import asyncio as aioredis

CHANNEL = "bench-raw"


async def publish_loop(url: str, count: int, message: bytes) -> dict[str, float]:
    # The relay's client options (gateway/redislink.py): one try, a 0.5 s timeout.
    client = aioredis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        await client.publish(CHANNEL, message)  # connected before the clock
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(count):
            await client.publish(CHANNEL, message)
        elapsed, spent = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await client.aclose()
    return {"rate": count / elapsed, "cpu_per_publish": spent / count}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--message-file", type=Path, required=True)
    args = parser.parse_args()
    result = asyncio.run(publish_loop(args.url, args.count, args.message_file.read_bytes()))
    sys.stdout.write(msgspec.json.encode(result).decode() + "\n")


if __name__ == "__main__":
    main()
