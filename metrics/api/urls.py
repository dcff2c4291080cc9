from django.urls import path

from metrics.api import views

urlpatterns = [
    path("surveys/", views.SurveyCreateApi.as_view(), name="survey-create"),
    path("customers/<int:pk>/marks/", views.CustomerMarkApi.as_view(), name="customer-mark"),
    path("customers/<int:pk>/metrics/", views.CustomerMetricsApi.as_view(), name="customer-metrics"),
    path("metrics/kpis/", views.KpiApi.as_view(), name="metrics-kpis"),
]
