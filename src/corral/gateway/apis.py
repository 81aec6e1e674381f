"""The client APIs on top of the engine's: which path a request takes, and what is remembered.

    front = ApiFront(settings.apis)
    translation = front.prepare("responses", replica.engine, payload, requested,
                                tools=policy.capabilities.tools)  # or None
    front.restore_reasoning(payload)        # chat requests: gpt-oss tool turns (store.py)
    front.remember(message)                 # after an answer with tool calls and reasoning

Holds the two bounded memories (retained responses, reasoning by tool call id) for the
gateway's lifetime; everything else is per request.
"""

from __future__ import annotations

from typing import Any, Literal

from corral.config import ApiSettings
from corral.gateway.translate import modes
from corral.gateway.translate.forced import ChatAsIs, Forced, ForcedTool
from corral.gateway.translate.messages import MessagesTranslation
from corral.gateway.translate.responses import ResponsesTranslation
from corral.gateway.translate.store import ReasoningMemory, ResponseStore

Translation = ResponsesTranslation | MessagesTranslation | Forced
Api = Literal["chat", "completions", "responses", "messages", "other"]


class ApiFront:
    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.responses = ResponseStore(settings.retained_responses, settings.retention_seconds)
        self.reasoning = ReasoningMemory(settings.reasoning_memory, settings.retention_seconds)

    def prepare(
        self, api: Api, engine: str, payload: dict[str, Any], requested: str, *, tools: bool
    ) -> Translation | None:
        """The translation for this request, or None to pass it through (400s raised here).
        `tools`: whether the deployment's model calls tools; if not, a forced tool (in any
        API, Chat Completions included) is answered as schema-constrained JSON (forced.py)."""
        translation = self._translation(api, engine, payload, requested)
        if tools:
            return translation
        if translation is None:
            forced = ForcedTool.of(payload) if api == "chat" else None
            return None if forced is None else Forced(ChatAsIs(payload, requested), forced)
        forced = ForcedTool.of(translation.chat_request())
        return translation if forced is None else Forced(translation, forced)

    def _translation(
        self, api: Api, engine: str, payload: dict[str, Any], requested: str
    ) -> ResponsesTranslation | MessagesTranslation | None:
        if api == "responses":
            retained = self.responses.get(str(payload.get("previous_response_id"))) is not None
            if modes.translates(api, self.settings.responses, engine, payload, retained):
                return ResponsesTranslation(payload, requested, self.responses)
        elif api == "messages" and modes.translates(
            api, self.settings.messages, engine, payload, False
        ):
            return MessagesTranslation(payload, requested)
        return None

    def restore_reasoning(self, chat: dict[str, Any]) -> int:
        """Put back reasoning the client dropped from its tool-call turns (gpt-oss)."""
        if not self.settings.reasoning_memory:
            return 0
        return self.reasoning.restore(chat.get("messages"))

    def remember(self, message: dict[str, Any]) -> None:
        if self.settings.reasoning_memory:
            self.reasoning.remember(message)
