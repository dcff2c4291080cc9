from django.urls import path

from customers.api import views

urlpatterns = [
    path("customers/", views.CustomerListApi.as_view(), name="customer-list"),
    path("customers/<int:pk>/", views.CustomerDetailApi.as_view(), name="customer-detail"),
    path("customers/<int:pk>/merge/", views.CustomerMergeApi.as_view(), name="customer-merge"),
    path("merges/", views.MergeListApi.as_view(), name="merge-list"),
    path("merges/<int:pk>/undo/", views.MergeUndoApi.as_view(), name="merge-undo"),
    path("merge-suggestions/", views.MergeSuggestionListApi.as_view(), name="merge-suggestion-list"),
    path("merge-suggestions/<int:pk>/accept/", views.MergeSuggestionAcceptApi.as_view(), name="merge-suggestion-accept"),
    path("merge-suggestions/<int:pk>/dismiss/", views.MergeSuggestionDismissApi.as_view(), name="merge-suggestion-dismiss"),
]
