"""Bedrock: self-hosted ML pipelines driven by bedrock.hcl."""

__version__ = "0.1.0"
