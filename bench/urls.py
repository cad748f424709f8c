"""The app as a host mounts it (with the admin), beside the baseline views and a per-process
report."""

from django.contrib import admin
from django.urls import include, path

from bench.baseline import BaselineStartView, BaselineVerifyView
from bench.support import process_view

urlpatterns = [
    path("api/mfa/", include("cognito_mfa.urls")),
    path("baseline/enrollments/", BaselineStartView.as_view()),
    path("baseline/enrollments/<str:enrollment_id>/verify/", BaselineVerifyView.as_view()),
    path("bench/process/", process_view),
    path("admin/", admin.site.urls),
]
