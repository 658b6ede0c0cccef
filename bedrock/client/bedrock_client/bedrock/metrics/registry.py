"""The live metric registry (``is_single_value``), from boxkite."""

from bedrock_client.bedrock.metrics import reexport

reexport(globals(), "monitoring.registry")
