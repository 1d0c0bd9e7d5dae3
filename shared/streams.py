"""Reading many Redis streams at once, on a single node or a cluster.

One ``XREAD`` can only name keys of one cluster slot, and each camera's streams have a slot of
their own. On a cluster the streams are therefore read with one non-blocking ``XREAD`` per slot,
pipelined (redis-py sends each node its share at once), and an empty answer waits a short poll
interval instead of blocking on the server. Each ``XREAD`` names its node: redis-py would otherwise
ask a server for an XREAD's keys (``COMMAND GETKEYS``) before every read. A single node keeps one
blocking ``XREAD``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping

from redis.crc import key_slot

from shared.redis import RedisClient, call, is_cluster

StreamEntries = list[tuple[bytes, dict]]
CLUSTER_POLL_MS = 20
"""On a cluster, how long an empty read waits before returning (instead of a blocking XREAD)."""


def read_streams(
    client: RedisClient, cursors: Mapping[str, bytes | str], *, count: int, block_ms: int
) -> list[tuple[str, StreamEntries]]:
    """Entries after each stream's cursor (at most ``count`` a stream), as ``(stream, entries)``
    for the streams that have any; waits up to ``block_ms`` (on a cluster: one poll interval) when
    none has. Raises StoreUnavailable."""
    if not cursors:
        return []
    if not is_cluster(client):
        replies = call(lambda: client.xread(dict(cursors), count=count, block=max(1, block_ms)))
        return [(_text(stream), entries) for stream, entries in replies or []]
    by_slot: dict[int, dict[str, bytes | str]] = defaultdict(dict)
    for stream, cursor in cursors.items():
        by_slot[key_slot(stream.encode())][stream] = cursor

    def read_each_slot() -> list:
        pipe = client.pipeline(transaction=False)
        for streams in by_slot.values():
            node = client.get_node_from_key(next(iter(streams)))
            pipe.execute_command("XREAD", "COUNT", count, "STREAMS", *streams, *streams.values(),
                                 target_nodes=node)  # fmt: skip
        return pipe.execute()

    found = [(_text(stream), entries) for reply in call(read_each_slot) for stream, entries in reply or []]
    if not found:
        time.sleep(min(max(1, block_ms), CLUSTER_POLL_MS) / 1000)
    return found


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
