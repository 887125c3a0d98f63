"""The pages: Django's login and logout views, the room list and the rooms."""

from django.urls import include, path
from rooms import views

urlpatterns = [
    path("accounts/", include("django.contrib.auth.urls")),
    path("", views.index, name="index"),
    path("chat/<slug:room_name>/", views.room, name="room"),
]
