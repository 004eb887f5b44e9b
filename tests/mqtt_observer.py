"""A test's own MQTT client: records everything published under a topic filter, so a test can
wait for what a node or the fleet sent and look at it in order."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from watchpost.broker import MosquittoBroker


@dataclass(frozen=True)
class Seen:
    topic: str
    payload: bytes

    @property
    def kind(self) -> str:
        return self.topic.rsplit("/", 1)[-1]

    def json(self) -> dict[str, Any]:
        value = json.loads(self.payload)
        assert isinstance(value, dict)
        return value


class Observer:
    """`with Observer(broker, "watchpost/v1/#") as seen:` then `seen.wait_for(...)`."""

    def __init__(
        self,
        broker: MosquittoBroker,
        topic: str = "watchpost/v1/#",
        *,
        qos: int = 1,
        session: str | None = None,
    ) -> None:
        # session: a persistent session's client id; what is published while the observer is
        # away (a broker restart) waits for it, as it does for the fleet manager.
        self.broker = broker
        self.topic = topic
        self.messages: list[Seen] = []
        self._changed = threading.Condition()
        self._subscribed = threading.Event()
        self._client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=session or "",
            clean_session=session is None,
        )
        self._client.max_inflight_messages_set(1000)
        self._client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=qos)
        self._client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self._client.on_message = self._on_message

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._changed:
            self.messages.append(Seen(message.topic, bytes(message.payload)))
            self._changed.notify_all()

    def __enter__(self) -> Self:
        self._client.connect(self.broker.host, self.broker.port)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("the observer could not subscribe")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        self._client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(10)

    def of_kind(self, kind: str) -> list[Seen]:
        with self._changed:
            return [s for s in self.messages if s.kind == kind]

    def wait_for(self, wanted: Callable[[list[Seen]], bool], timeout: float = 10.0) -> list[Seen]:
        """Block until `wanted(messages)` holds; fail with what was seen after `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not wanted(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = [(s.topic, s.payload[:120]) for s in self.messages[-8:]]
                    raise AssertionError(
                        f"not seen within {timeout} s; {len(self.messages)} seen, last: {tail}"
                    )
                self._changed.wait(left)
            return list(self.messages)

    def count(self, kind: str) -> Callable[[list[Seen]], bool]:
        return lambda seen: sum(s.kind == kind for s in seen) > 0
