from django.urls import path

from accounts import views

urlpatterns = [
    path("password-reset/", views.password_reset, name="password-reset"),
]
