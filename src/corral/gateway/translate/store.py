"""Bounded memory of what the gateway answered, for follow-up requests.

`ResponseStore`: the conversation behind each translated Responses answer, so a request
with `previous_response_id` continues it. `ReasoningMemory`: the reasoning an engine sent
with a turn that called tools, keyed by the call ids, so it can be put back when a client
returns that turn without it (gpt-oss loses its chain otherwise; vllm issue 27653).

Both are LRU maps bounded by entry count and age; memory is the only state, so a gateway
restart forgets them (a `previous_response_id` from before is then a clear 400). Not
thread-safe: used from the event loop only.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Conversation:
    """The chat messages of one exchange, the answer included."""

    messages: list[dict[str, Any]]


class Bounded(Generic[T]):
    """An LRU map: at most `capacity` entries, none older than `ttl` seconds."""

    def __init__(
        self, capacity: int, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = capacity
        self.ttl = ttl
        self.clock = clock
        self._items: OrderedDict[str, tuple[float, T]] = OrderedDict()

    def put(self, key: str, value: T) -> None:
        self._items[key] = (self.clock(), value)
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def get(self, key: str) -> T | None:
        found = self._items.get(key)
        if found is None:
            return None
        stamp, value = found
        if self.clock() - stamp > self.ttl:
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return value

    def __len__(self) -> int:
        return len(self._items)

    def describe(self) -> str:
        return f"{self.capacity} responses for {self.ttl:g} s"


class ResponseStore(Bounded[Conversation]):
    """Conversations by response id."""


class ReasoningMemory(Bounded[str]):
    """Reasoning text by tool call id."""

    def remember(self, message: dict[str, Any]) -> None:
        """Keep a message's reasoning under each of its tool call ids (if it has both)."""
        text = message.get("reasoning") or message.get("reasoning_content")
        calls = message.get("tool_calls")
        if not isinstance(text, str) or not text or not isinstance(calls, list):
            return
        for call in calls:
            if isinstance(call, dict) and call.get("id"):
                self.put(str(call["id"]), text)

    def restore(self, messages: Any) -> int:
        """Put reasoning back on assistant tool-call turns that lack it; how many restored."""
        restored = 0
        for message in messages if isinstance(messages, list) else ():
            if not _needs_reasoning(message):
                continue
            for call in message["tool_calls"]:
                text = self.get(str(call.get("id"))) if isinstance(call, dict) else None
                if text:
                    message["reasoning"] = text
                    restored += 1
                    break
        return restored


def _needs_reasoning(message: Any) -> bool:
    return (
        isinstance(message, dict)
        and message.get("role") == "assistant"
        and isinstance(message.get("tool_calls"), list)
        and not message.get("reasoning")
        and not message.get("reasoning_content")
    )
