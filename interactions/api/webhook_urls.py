from django.urls import path

from interactions.api import webhook_views as views

urlpatterns = [
    path("email/", views.email_raw, name="webhook-email"),
    path("email/<str:secret>/", views.email_raw, name="webhook-email-secret"),
    path("mailgun/", views.mailgun_inbound, name="webhook-mailgun"),
    path("sendgrid/", views.sendgrid_inbound, name="webhook-sendgrid"),
    path("sendgrid/<str:secret>/", views.sendgrid_inbound, name="webhook-sendgrid-secret"),
    path("twilio/voice/", views.twilio_voice, name="webhook-twilio-voice"),
    path("twilio/messaging/", views.twilio_messaging, name="webhook-twilio-messaging"),
    path("meta/", views.meta_webhook, name="webhook-meta"),
    path("chat/", views.chat_widget, name="webhook-chat"),
]
