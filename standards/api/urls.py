from django.urls import path

from standards.api import views

urlpatterns = [
    path("standards/", views.StandardListApi.as_view(), name="standard-list"),
    path("standards/compliance/", views.ComplianceApi.as_view(), name="standard-compliance"),
    path("standards/evaluations/", views.EvaluationListApi.as_view(), name="standard-evaluation-list"),
    path("standards/<int:pk>/", views.StandardDetailApi.as_view(), name="standard-detail"),
    path("standards/<int:pk>/versions/<int:number>/diff/", views.StandardVersionDiffApi.as_view(),
         name="standard-version-diff"),
    path("canned-responses/", views.CannedResponseListApi.as_view(), name="canned-response-list"),
    path("canned-responses/<int:pk>/render/", views.CannedResponseRenderApi.as_view(), name="canned-response-render"),
]
