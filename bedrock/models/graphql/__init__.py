"""The GraphQL layer of models and model versions."""
