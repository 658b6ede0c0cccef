from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.decorators.csrf import ensure_csrf_cookie

from bedrock.graphqlview import BedrockGraphQLView
from bedrock.schema import schema

admin.site.site_header = "Bedrock administration"
admin.site.site_title = "Bedrock"
admin.site.index_title = "Projects, pipelines, runs and models"

urlpatterns = [
    path("admin/", admin.site.urls),
    # GraphiQL sends the CSRF cookie back as a header, so the page must set it.
    path(
        "graphql",
        ensure_csrf_cookie(BedrockGraphQLView.as_view(schema=schema, graphql_ide="graphiql")),
    ),
    path("", include("bedrock.runs.urls")),
    path("", include("bedrock.models.urls")),
    path("", include("bedrock.tracking.urls")),
    path("", include("bedrock.ui.urls")),
]
