"""Errors a caller can act on; `.status` is the HTTP status each maps to."""

from __future__ import annotations


class StoreError(Exception):
    """Base of the errors a caller can act on; `.status` is the HTTP status it maps to."""

    status = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotFound(StoreError):
    status = 404


class Conflict(StoreError):
    """The request clashes with the current state (e.g. claiming a claimed task)."""

    status = 409


class IdempotencyConflict(Conflict):
    """An idempotency key was reused for a different request."""


class Forbidden(StoreError):
    status = 403


class InvalidInput(StoreError):
    status = 422
