"""The rules every owned resource shares: ids that name nothing are a 404, a write that changed nothing is
a 404 or a 412, a per-user quota is a 409 with its number. Worded per resource (``noun``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar, NoReturn, Self
from uuid import UUID

from advanced_alchemy.exceptions import NotFoundError
from litestar.exceptions import ClientException, ValidationException
from litestar.status_codes import HTTP_409_CONFLICT

from backend.data.ordering import refusal
from backend.errors import VersionMismatch


class Resource:
    """Mixed into a resource's service. ``noun`` ("Task") words its 404; ``quota`` is the most rows one
    user may hold, set per app by ``with_quota`` (the class handed to AA's ``create_service_provider``)."""

    noun: ClassVar[str]
    quota: ClassVar[int]

    @classmethod
    def with_quota(cls, quota: int) -> type[Self]:
        """This service with the app's quota: AA's provider builds a service from the session alone, so
        per-app settings travel in the class it is given."""
        return type(cls.__name__, (cls,), {"quota": quota, "__module__": cls.__module__})

    def not_found(self) -> NoReturn:
        raise NotFoundError(f"{self.noun} not found")

    def parse_id(self, raw: str) -> UUID:
        # A string that is not a UUID names nothing: the same 404 as a missing id.
        try:
            return UUID(raw)
        except ValueError:
            self.not_found()

    async def missing_or_stale(
        self, exists: Callable[[], Awaitable[bool]], if_match: tuple[int, ...] | None
    ) -> NoReturn:
        """A guarded write changed nothing: 412 when the row exists (only its version differs), else 404."""
        if if_match is not None and await exists():
            raise VersionMismatch(self.noun)
        self.not_found()

    def quota_reached(self, field: str) -> NoReturn:
        plural = f"{self.noun.lower()}s"
        raise ClientException(
            status_code=HTTP_409_CONFLICT,
            detail=f"{self.noun} limit reached: a user holds at most {self.quota} {plural}",
            extra=[{"field": field, "message": f"at most {self.quota} per user"}],
        )

    def refused(self, exc: Exception) -> NoReturn:
        """Raise what the API answers for a database refusal of a move or placement (``exc`` itself when
        it is not one): 404, 412, or a 400 naming the field."""
        answer = refusal(exc)
        if answer is None:
            raise exc
        if answer.status == 404:
            self.not_found()
        if answer.status == 412:
            raise VersionMismatch(self.noun)
        raise ValidationException(
            detail=f"Invalid {answer.field}", extra=[{"field": answer.field, "message": answer.message}]
        )
