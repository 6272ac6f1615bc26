"""The ingest's proof that it is accepting heartbeats: a watermark in every heartbeat partition
a few times a second (`contracts.events.IngestWatermark`).

A watermark goes through the same producer as the heartbeats, after every heartbeat received
before its moment was handed to that producer; the producer keeps their order within a
partition, so a processor that reads the watermark has read all of them. While this instance
cannot write to Kafka no watermark lands, and processors stop judging silence.
"""

import asyncio
import contextlib
import logging
import re
import socket
import time
import uuid
from itertools import count

from attendance.encoding import watermark_record
from contracts.topics import HEARTBEATS, watermark_key
from servicekit.kafka import KAFKA_ERRORS, RawPublisher

log = logging.getLogger(__name__)
# Turns of the event loop that take a request from bytes in a socket to its handler (a read,
# the protocol's task, the handler: a few), with room to spare.
LOOP_TURNS = 32


def instance_name() -> str:
    """This process's name in its watermarks: the host, and a part of its own."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:40] or "ingest"
    return f"{host}-{uuid.uuid4().hex[:12]}"


class Stamps:
    """Requests whose heartbeats are read but not handed to the producer yet, and how far the
    ingest has surely read its sockets: a watermark may claim no later.

    A request's bytes can wait unread in a socket, the ingest stalled (stopped, starved of
    CPU) while its clock ran on: reading the clock proves nothing about them. So each
    watermark first lets the event loop turn `LOOP_TURNS` times, in which every request whose
    bytes were already there is read and opened; only then is the moment sampled before the
    turns a moment all of them are behind. A request opened meanwhile arrived after the
    previous such moment, so that is the bound it holds the watermarks to."""

    def __init__(self, now: float) -> None:
        self._open: dict[int, float] = {}
        self._tokens = count()
        self._read_until = now

    def open(self) -> int:
        token = next(self._tokens)
        self._open[token] = self._read_until
        return token

    def close(self, token: int) -> None:
        self._open.pop(token, None)

    def tick(self, sampled: float) -> float:
        """The latest moment a watermark may claim, `sampled` having been read from the clock
        before the loop turned `LOOP_TURNS` times."""
        claim = min(sampled, *self._open.values()) if self._open else sampled
        self._read_until = max(self._read_until, sampled)
        return claim


class Watermarks:
    def __init__(
        self, publisher: RawPublisher, stamps: Stamps, *, ingest: str, timeout: float
    ) -> None:
        self._publisher = publisher
        self._stamps = stamps
        self.ingest = ingest
        self._key = watermark_key(ingest)
        self._timeout = timeout

    async def run(self, every: float) -> None:
        """Write a watermark every `every` seconds, each once the previous one landed (or
        failed: then the processors see the gap, which is the truth)."""
        while True:
            started = time.monotonic()
            with contextlib.suppress(*KAFKA_ERRORS):
                await self.write(final=False)
            await asyncio.sleep(max(0.0, every - (time.monotonic() - started)))

    async def write(self, *, final: bool) -> None:
        sampled = time.time()
        for _ in range(LOOP_TURNS):
            await asyncio.sleep(0)
        value = watermark_record(self.ingest, self._stamps.tick(sampled), final)
        try:
            async with asyncio.timeout(self._timeout):
                count = await self._publisher.partition_count()
                pending = await self._publisher.publish_all(
                    [(self._key, value, partition) for partition in range(count)]
                )
                await asyncio.gather(*pending)
        except KAFKA_ERRORS as error:
            log.debug("watermark not written to %s (%r)", HEARTBEATS.name, error)
            raise
