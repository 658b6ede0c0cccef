#!/usr/bin/env python
"""Django's command-line utility; the ``bedrock`` console script runs the same commands."""

from bedrock.cli import main

if __name__ == "__main__":
    main()
