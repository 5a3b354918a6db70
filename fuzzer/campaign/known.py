"""The signatures a campaign has filed, shared between the store writer and the engines' drivers."""

from __future__ import annotations

import threading


class KnownSignatures:
    """Signatures already filed in the store: the driver threads ask, the store writer adds. A finding with a
    signature outside it is confirmed in a fresh worker before it is filed."""

    def __init__(self, signatures: list[str] | None = None) -> None:
        self._lock = threading.Lock()
        self._set = set(signatures or ())

    def __contains__(self, signature: object) -> bool:
        with self._lock:
            return signature in self._set

    def add(self, signatures: list[str]) -> None:
        with self._lock:
            self._set.update(signatures)

    def snapshot(self) -> list[str]:
        with self._lock:
            return sorted(self._set)
