from django.urls import path

from smtp import views

ops_urlpatterns = [
    path("smtp/", views.ops_smtp, name="smtp"),
]

web_urlpatterns = [
    path("infrastructure/system/settings/smtp/", views.web_smtp, name="smtp"),
]
