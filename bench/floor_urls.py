"""The console's URLs and two that do nothing, for ``bench/instructions.py``:
what any request pays before a view does its own work.

- ``bench/floor/view``: a plain Django view answering ``ok``, through the whole
  middleware chain (no session read: nothing asks for it);
- ``bench/floor/api``: an API view answering ``{}``, with the API's
  authentication (the session read with its user), permission and renderer,
  as every authenticated read has them.

Only the benchmark's own process serves these (its ROOT_URLCONF); the console
never does.
"""

from __future__ import annotations

from django.http import HttpResponse
from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from opsconsole.urls import urlpatterns as console_urlpatterns

FLOOR_VIEW_URL = "/bench/floor/view"
FLOOR_API_URL = "/bench/floor/api"


def _nothing(request):
    return HttpResponse(b"ok", content_type="text/plain")


class _NothingApi(APIView):
    def get(self, request):
        return Response({})


urlpatterns = [
    path(FLOOR_VIEW_URL.lstrip("/"), _nothing),
    path(FLOOR_API_URL.lstrip("/"), _NothingApi.as_view()),
    *console_urlpatterns,
]
