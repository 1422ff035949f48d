from django.urls import path

from smtp import apis, views

ops_urlpatterns = [
    path("smtp/", views.ops_smtp, name="smtp"),
    path("smtp/test", views.ops_smtp_test, name="smtp-test"),
    path("emails/<int:email_id>/", views.ops_email, name="email"),
    path("email-identity/", views.ops_email_identity, name="email-identity"),
    path(
        "email-identity/preview/<str:kind>/",
        views.ops_email_preview,
        name="email-preview",
    ),
    path(
        "email-identity/preview/<str:kind>/send",
        views.ops_email_preview_send,
        name="email-preview-send",
    ),
]

web_urlpatterns = [
    path("infrastructure/system/settings/smtp/", views.web_smtp, name="smtp"),
    path(
        "infrastructure/system/settings/smtp/test",
        views.web_smtp_test,
        name="smtp-test",
    ),
    path("emails/<int:email_id>/", views.web_email, name="email"),
]

urlpatterns = [
    path(
        "email-logo/<int:partner_id>/<str:digest>",
        views.email_logo,
        name="email-logo",
    ),
    path(
        "event/v1/email/config", apis.SmtpConfigApi.as_view(), name="api-email-config"
    ),
    path("event/v1/email/texts", apis.EmailTextsApi.as_view(), name="api-email-texts"),
    path(
        "event/v1/email/config/verification",
        apis.VerificationApi.as_view(),
        name="api-email-verification",
    ),
    path(
        "event/v1/email/config/verification/<int:email_id>",
        apis.VerificationStatusApi.as_view(),
        name="api-email-verification-status",
    ),
]
