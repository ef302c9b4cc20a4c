"""The caller's own account, and the health check."""

from __future__ import annotations

from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from drf_spectacular.utils import extend_schema
from rest_framework.generics import RetrieveAPIView

from tenancy.models import User

from .serializers import MeSerializer


class MeView(RetrieveAPIView[User]):
    """The signed-in user and the shops they may act for, with their role in each."""

    serializer_class = MeSerializer

    def get_object(self) -> User:
        # Memberships and shops are directory tables (no RLS); the user reads only their own.
        return User.objects.prefetch_related("memberships__shop").get(pk=str(self.request.user.pk))


@extend_schema(exclude=True)
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database answers, 503 otherwise (for load balancers; no auth)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return JsonResponse({"status": "error", "database": "unreachable"}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})
