from django.urls import path

from accounts import views

ops_urlpatterns = [
    path("organizations/", views.ops_organization_list, name="organizations"),
    path(
        "organizations/<int:organization_id>/",
        views.ops_organization_detail,
        name="organization",
    ),
    path(
        "organizations/new/",
        views.ops_organization_create,
        name="organization-new",
    ),
]

urlpatterns = [
    path("password-reset/", views.password_reset, name="password-reset"),
]
