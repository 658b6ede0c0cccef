"""The histogram and baseline collectors, from boxkite."""

from bedrock_client.bedrock.metrics import reexport

reexport(globals(), "monitoring.collector")
