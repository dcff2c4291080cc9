from django.urls import path

from integrations.api import views

urlpatterns = [
    path("webhooks/event-types/", views.EventTypeListView.as_view(), name="webhook-event-type-list"),
    path("webhooks/subscriptions/", views.SubscriptionListView.as_view(), name="webhook-subscription-list"),
    path(
        "webhooks/subscriptions/<int:pk>/", views.SubscriptionDetailView.as_view(), name="webhook-subscription-detail"
    ),
    path(
        "webhooks/subscriptions/<int:pk>/rotate-secret/",
        views.SubscriptionRotateSecretView.as_view(),
        name="webhook-subscription-rotate-secret",
    ),
    path("webhooks/deliveries/", views.DeliveryListView.as_view(), name="webhook-delivery-list"),
    path("webhooks/deliveries/<int:pk>/", views.DeliveryDetailView.as_view(), name="webhook-delivery-detail"),
    path(
        "webhooks/deliveries/<int:pk>/redeliver/",
        views.DeliveryRedeliverView.as_view(),
        name="webhook-delivery-redeliver",
    ),
]
