"""Basis AI's first client generation, ``bedrock_client.bedrock``, on the same implementation."""
