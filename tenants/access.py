"""Who may open which console page: the tenant and role checks, in one place.

A page of the other console, of another tenant, or of a feature that is off
answers 404: a user never learns that another tenant's page exists. A read-only
user may look but not change (403 on unsafe methods).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse

from tenants.models import Console
from tenants.selectors import TenantScope, tenant_scope_for_user

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

READ_ONLY_MESSAGE = (
    "Your role is read-only: ask an admin of your tenant to make this change."
)


def _enforce(request: HttpRequest, scope: TenantScope, *, smtp_feature: bool) -> None:
    """The feature and role rules shared by pages and APIs."""
    if (
        smtp_feature
        and scope.organization is not None
        and not scope.organization.smtp_configuration_enabled
    ):
        raise Http404(
            "SMTP configuration is not enabled for this organization; contact "
            "support to enable it."
        )
    if request.method not in SAFE_METHODS and not request.user.is_tenant_admin:
        raise PermissionDenied(READ_ONLY_MESSAGE)


def console_page(
    console: Console, *, smtp_feature: bool = False
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Decorate a view of ``console``; sets ``request.scope`` (the user's tenant).

    ``smtp_feature`` hides the page (404) when the organization's SMTP
    configuration feature is off.
    """

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            user = request.user
            if not user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if user.console != console:
                raise Http404("No such page in your console.")
            request.scope = tenant_scope_for_user(user=user)
            _enforce(request, request.scope, smtp_feature=smtp_feature)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


ops_page = console_page(Console.OPS)
web_page = console_page(Console.WEB)


def api_tenant_scope(request, *, smtp_feature: bool = False) -> TenantScope:
    """The caller's tenant for an API request, with the same rules as the pages.

    404 for callers without a tenant and, with ``smtp_feature``, for organizations
    whose SMTP feature is off; 403 for read-only users on unsafe methods.
    """
    scope = tenant_scope_for_user(user=request.user)
    if scope is None:
        raise Http404(
            "This account belongs to no partner or organization; the API acts on "
            "the caller's own tenant."
        )
    _enforce(request, scope, smtp_feature=smtp_feature)
    return scope
