from __future__ import annotations

from django.urls import path

from bedrock.tracking import indexviews, views

urlpatterns = [
    path("api/tracking", views.tracking_batch, name="tracking_batch"),
    path("pypi/simple/", indexviews.simple_root, name="package_index"),
    path("pypi/simple/<str:project>/", indexviews.simple_project, name="package_index_project"),
    path("pypi/files/<str:filename>", indexviews.wheel_file, name="package_index_file"),
]
