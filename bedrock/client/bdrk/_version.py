# The package index Bedrock serves to steps builds this same code at the version numbers that
# repositories written for Basis AI's Bedrock pin, and writes that number here.
__version__ = "0.10.0"
