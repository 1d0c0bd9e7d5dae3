"""The alert feed's reader across a Redis restart: it resumes after the last entry it sent, so
the events recorded once Redis is back reach every open feed without a reload."""

from __future__ import annotations

import asyncio

from shared.config import RedisConfig
from shared.redis import EmbeddedRedis, connect
from tests.web.conftest import alert, publish_alert
from web.alertfeed import AlertFeed
from web.metrics import WebMetrics


def test_the_feed_resumes_after_a_redis_restart(private_redis: EmbeddedRedis) -> None:
    client = connect(RedisConfig(url=private_redis.url, socket_timeout_s=1, connect_timeout_s=0.5))
    feed = AlertFeed(client, metrics=WebMetrics())

    async def follow() -> list[str]:
        with feed.subscribed(asyncio.get_running_loop()) as subscriber:
            await asyncio.sleep(0.3)  # the reader has started at the newest entry
            publish_alert(client, alert("before"))
            seen = [(await asyncio.wait_for(subscriber.queue.get(), 10)).event.event_id]
            private_redis.stop(kill=True)
            await asyncio.sleep(1.5)  # the reader meets the dead server and retries
            private_redis.start()
            for name in ("after-1", "after-2"):
                publish_alert(connect(RedisConfig(url=private_redis.url)), alert(name))
            for _ in range(2):
                seen.append((await asyncio.wait_for(subscriber.queue.get(), 10)).event.event_id)
            return seen

    assert asyncio.run(follow()) == ["before", "after-1", "after-2"]
