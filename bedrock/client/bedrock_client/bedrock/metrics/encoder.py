"""``MetricEncoder``, from boxkite."""

from bedrock_client.bedrock.metrics import reexport

reexport(globals(), "monitoring.encoder")
