"""The collectors' base class, from boxkite."""

from bedrock_client.bedrock.metrics import reexport

reexport(globals(), "monitoring.collector.type")
