"""The index itself: posts by key in memory, applied the way the EI backend applies an Update.

One lock guards everything: granian runs WSGI calls on several threads, and a call's deletes and
saves must be seen as one step by FindContent and /_stub/state. The log keeps every applied
transaction with a monotonic sequence number, so tests can check order, not just the end state.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from engagement_index.fields import KEY_FIELDS, MANDATORY_FIELDS
from engagement_index.stub.rules import Key, key_of

Post = dict[str, Any]

# FindContent criteria that must equal the stored value; mostRecentContent is ">=" instead.
EXACT_CRITERIA = (*MANDATORY_FIELDS, "owner")


@dataclass(frozen=True)
class Transaction:
    delete: bool
    engagement: Mapping[str, str]


@dataclass(frozen=True)
class Applied:
    """One log line. effect: created, updated, unchanged (identical resend), deleted, absent (no such post)."""

    seq: int
    call: int
    key: dict[str, str]
    deleteFlag: bool  # the contract's spelling, as in the JSON state
    mostRecentContent: str | None
    effect: str


KEPT_REQUESTS = 200  # the last raw requests, for GET /_stub/requests


class Store:
    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._lock = threading.Lock()
        self._posts: dict[Key, Post] = {}
        self._log: list[Applied] = []
        self._calls = {"Update": 0, "FindContent": 0}
        self._requests: deque[dict[str, Any]] = deque(maxlen=KEPT_REQUESTS)

    def keep_request(self, operation: str, call: int, body: bytes, trace: dict[str, str] | None = None) -> None:
        """Keep the raw request and its trace headers, so testers can check what a client really sent."""
        with self._lock:
            self._requests.append(
                {"operation": operation, "call": call, "body": body.decode("utf-8", "replace"), **(trace or {})}
            )

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._requests)

    def count_call(self, operation: str) -> int:
        """Count a SOAP call as it arrives (whatever control does with it); returns its number."""
        with self._lock:
            self._calls[operation] += 1
            return self._calls[operation]

    def apply(self, call: int, transactions: Iterable[Transaction], now: str) -> list[Applied]:
        """All deletes, then all saves (skltp/ei UpdatePersistentStorageServiceImpl); now is a TS."""
        ordered = sorted(transactions, key=lambda t: not t.delete)  # stable: request order kept within each
        applied: list[Applied] = []
        with self._lock:
            for transaction in ordered:
                key = key_of(transaction.engagement, self.owner)
                content = transaction.engagement.get("mostRecentContent") or None
                effect = self._delete(key) if transaction.delete else self._save(key, content, now)
                entry = Applied(
                    seq=len(self._log) + 1,
                    call=call,
                    key=dict(zip(KEY_FIELDS, key, strict=True)),
                    deleteFlag=transaction.delete,
                    mostRecentContent=None if transaction.delete else content,
                    effect=effect,
                )
                self._log.append(entry)
                applied.append(entry)
        return applied

    def _delete(self, key: Key) -> str:
        return "deleted" if self._posts.pop(key, None) is not None else "absent"

    def _save(self, key: Key, content: str | None, now: str) -> str:
        post = self._posts.get(key)
        if post is None:
            self._posts[key] = {
                **dict(zip(KEY_FIELDS, key, strict=True)),
                "mostRecentContent": content,
                "creationTime": now,
                "updateTime": None,
            }
            return "created"
        if post["mostRecentContent"] == content:
            return "unchanged"  # pR5: an identical resend is a no-op
        post["mostRecentContent"] = content
        post["updateTime"] = now
        return "updated"

    def find(self, criteria: Mapping[str, str]) -> list[Post]:
        """FindContent: exact match on the given fields, mostRecentContent at or after the given TS."""
        wanted = {name: criteria[name] for name in EXACT_CRITERIA if criteria.get(name)}
        since = criteria.get("mostRecentContent") or None
        with self._lock:
            return [
                dict(post)
                for post in self._posts.values()
                if all(post[name] == value for name, value in wanted.items())
                and (since is None or (post["mostRecentContent"] is not None and post["mostRecentContent"] >= since))
            ]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            history: dict[tuple[str, ...], list[int]] = {}
            for entry in self._log:
                history.setdefault(tuple(entry.key.values()), []).append(entry.seq)
            return {
                "posts": [{**post, "history": history.get(key, [])} for key, post in self._posts.items()],
                "update_calls": self._calls["Update"],
                "find_content_calls": self._calls["FindContent"],
                "log": [asdict(entry) for entry in self._log],
            }

    def reset(self) -> None:
        with self._lock:
            self._posts.clear()
            self._log.clear()
            self._calls = dict.fromkeys(self._calls, 0)
            self._requests.clear()
