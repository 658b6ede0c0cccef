from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path, re_path

from bedrock.ui import aliases, modelpages, registry, teams, views, webhooks

app_name = "ui"

urlpatterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(next_page="/login/"), name="logout"),
    path("", views.home, name="home"),
    path("pipelines/new", views.pipeline_new, name="pipeline_new"),
    path("pipelines/<int:pk>/", views.pipeline_detail, name="pipeline"),
    path("pipelines/<int:pk>/edit", views.pipeline_edit, name="pipeline_edit"),
    path("pipelines/<int:pk>/archive", views.pipeline_archive, name="pipeline_archive"),
    path("pipelines/<int:pk>/run", views.run_new, name="run_new"),
    path("pipelines/<int:pk>/compare", views.run_compare, name="run_compare"),
    path("pipelines/<int:pk>/secrets", views.secrets, name="secrets"),
    path("pipelines/<int:pk>/secrets/delete", views.secret_delete, name="secret_delete"),
    path("runs/<int:pk>/", views.run_detail, name="run"),
    path("runs/<int:pk>/status", views.run_status, name="run_status"),
    path("runs/<int:pk>/tracking", views.run_tracking_parts, name="run_tracking"),
    path("runs/<int:pk>/steps/<str:step>/log", views.step_log, name="step_log"),
    path("runs/<int:pk>/stop", views.run_stop, name="run_stop"),
    path("runs/<int:pk>/rerun", views.run_rerun, name="run_rerun"),
    path("models/", modelpages.model_list, name="models"),
    path("models/<int:pk>/", modelpages.model_detail, name="model"),
    path("models/<int:pk>/aliases/set", aliases.model_alias_set_view, name="model_alias_set"),
    path(
        "models/<int:pk>/aliases/remove", aliases.model_alias_remove_view, name="model_alias_remove"
    ),
    path(
        "models/<int:pk>/aliases/rollback",
        aliases.model_alias_rollback_view,
        name="model_alias_rollback",
    ),
    path(
        "model-versions/<int:pk>/files/",
        modelpages.model_version_files_page,
        name="model_version_files",
    ),
    path(
        "model-versions/<int:pk>/describe",
        registry.model_version_describe,
        name="model_version_describe",
    ),
    re_path(
        r"^model-versions/(?P<pk>[0-9]+)/(?P<action>deprecate|undeprecate|delete)$",
        registry.model_version_change,
        name="model_version_change",
    ),
    path("projects/", teams.project_list, name="projects"),
    path("projects/new", teams.project_new, name="project_new"),
    path("projects/<int:pk>/", teams.project_detail, name="project"),
    path("projects/<int:pk>/edit", teams.project_edit, name="project_edit"),
    path("projects/<int:pk>/members", teams.membership_set, name="membership_set"),
    path(
        "projects/<int:pk>/members/<str:username>/remove",
        teams.membership_remove,
        name="membership_remove",
    ),
    path("projects/<int:pk>/models/new", teams.model_new, name="project_model_new"),
    path("models/<int:pk>/edit", teams.model_edit, name="model_edit"),
    path("tokens/", views.tokens, name="tokens"),
    path("tokens/<int:pk>/revoke", views.token_revoke, name="token_revoke"),
    path("projects/<int:pk>/webhooks", webhooks.webhooks, name="webhooks"),
    path("projects/<int:pk>/webhooks/<int:webhook_pk>/", webhooks.webhook_detail, name="webhook"),
    path(
        "projects/<int:pk>/webhooks/<int:webhook_pk>/delete",
        webhooks.webhook_delete,
        name="webhook_delete",
    ),
    path(
        "projects/<int:pk>/webhooks/<int:webhook_pk>/test",
        webhooks.webhook_test,
        name="webhook_test",
    ),
    path(
        "projects/<int:pk>/webhooks/<int:webhook_pk>/deliveries/<int:delivery_pk>/redeliver",
        webhooks.webhook_redeliver,
        name="webhook_redeliver",
    ),
]
