from django.urls import path

from interactions.api import views

urlpatterns = [
    path("interactions/", views.InteractionCreateApi.as_view(), name="interaction-create"),
    path("interactions/bulk/", views.InteractionBulkApi.as_view(), name="interaction-bulk"),
    path("interactions/<int:pk>/", views.InteractionDetailApi.as_view(), name="interaction-detail"),
    path("customers/<int:pk>/timeline/", views.TimelineApi.as_view(), name="customer-timeline"),
    path("conversations/", views.ConversationListApi.as_view(), name="conversation-list"),
    path("conversations/<int:pk>/", views.ConversationDetailApi.as_view(), name="conversation-detail"),
]
