from django.contrib.auth import views as auth_views
from django.urls import path

from tenants import apis, views

ops_urlpatterns = [
    path("", views.ops_home, name="home"),
]

web_urlpatterns = [
    path("", views.web_home, name="home"),
    path("infrastructure/system/settings/", views.web_settings, name="settings"),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "password-reset/<uidb64>/<token>/",
        views.PasswordLinkView.as_view(),
        name="password-reset-confirm",
    ),
    path(
        "account/setup/<uidb64>/<token>/",
        views.AccountSetupView.as_view(),
        name="account-setup",
    ),
    path("auth/v1/login/", apis.LoginApi.as_view(), name="api-login"),
    path("auth/v1/logout/", apis.LogoutApi.as_view(), name="api-logout"),
]
