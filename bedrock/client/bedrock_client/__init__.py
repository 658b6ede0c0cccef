"""Bedrock client modules under the names of Basis AI's first client generation."""
