"""Validation of a chat request's messages, shared by the copilot's own and its OpenAI endpoints."""
from __future__ import annotations

from typing import Iterable

from predator.copilot.prompt import Message

# OpenAI's newer clients send "developer" for system instructions.
_ROLE_ALIASES = {"developer": "system"}
ROLES = ("system", "user", "assistant")


class RequestError(ValueError):
    """A request that cannot be answered as sent; ``field`` names the culprit, ``status`` the HTTP 4xx,
    ``details`` anything else the client needs (the adapters available, for example)."""

    def __init__(self, field: str, reason: str, status: int = 400, **details):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.status = status
        self.details = details


def conversation(messages: Iterable[tuple[str, str]], max_messages: int, max_chars: int) -> list[Message]:
    """Checked messages ending with the user's question; RequestError names the first problem."""
    checked = []
    for i, (role, content) in enumerate(messages):
        role = _ROLE_ALIASES.get(role, role)
        if role not in ROLES:
            raise RequestError(f"messages[{i}].role", f"must be one of {', '.join(ROLES)}, got {role!r}")
        if len(content) > max_chars:
            raise RequestError(f"messages[{i}].content", f"longer than {max_chars} characters")
        checked.append(Message(role, content))
    if not checked:
        raise RequestError("messages", "at least one message (the question) is needed")
    if len(checked) > max_messages:
        raise RequestError("messages", f"at most {max_messages} messages, got {len(checked)}")
    last = len(checked) - 1
    if checked[-1].role != "user":
        raise RequestError(f"messages[{last}].role", "the last message must be the user's question")
    if not checked[-1].content.strip():
        raise RequestError(f"messages[{last}].content", "the question is empty")
    return checked
