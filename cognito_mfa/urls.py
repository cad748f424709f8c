from django.urls import path

from . import views

app_name = "cognito_mfa"

urlpatterns = [
    path("status/", views.StatusView.as_view(), name="status"),
    path("enrollments/", views.EnrollmentListView.as_view(), name="enrollment-list"),
    path(
        "enrollments/<str:enrollment_id>/",
        views.EnrollmentDetailView.as_view(),
        name="enrollment-detail",
    ),
    path(
        "enrollments/<str:enrollment_id>/verify/",
        views.EnrollmentVerifyView.as_view(),
        name="enrollment-verify",
    ),
    path("preference/", views.PreferenceView.as_view(), name="preference"),
    path(
        "challenge/enrollments/",
        views.ChallengeEnrollmentView.as_view(),
        name="challenge-enrollment-list",
    ),
    path(
        "challenge/enrollments/<str:enrollment_id>/verify/",
        views.ChallengeVerifyView.as_view(),
        name="challenge-enrollment-verify",
    ),
]
