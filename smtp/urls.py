from django.urls import path

from smtp import apis, views

ops_urlpatterns = [
    path("smtp/", views.ops_smtp, name="smtp"),
]

web_urlpatterns = [
    path("infrastructure/system/settings/smtp/", views.web_smtp, name="smtp"),
]

urlpatterns = [
    path(
        "event/v1/email/config", apis.SmtpConfigApi.as_view(), name="api-email-config"
    ),
]
