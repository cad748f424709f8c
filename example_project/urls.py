from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("demo/sign-in/", views.sign_in, name="demo-sign-in"),
    path("demo/respond/", views.respond, name="demo-respond"),
    path("admin/", admin.site.urls),
    path("api/mfa/", include("cognito_mfa.urls")),
]

if getattr(settings, "HAS_SPECTACULAR", False):
    from drf_spectacular.views import SpectacularAPIView

    urlpatterns.append(path("api/schema/", SpectacularAPIView.as_view(), name="schema"))
