"""The GraphQL layer of projects and pipelines; composed into one schema by ``bedrock.schema``."""
