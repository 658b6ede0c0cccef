"""Model monitoring moved to boxkite; these modules re-export it under the old names.

Install it with ``pip install "bdrk[model-monitoring]"``.
"""

import importlib
from typing import Any, Dict


def reexport(namespace: Dict[str, Any], module: str) -> Any:
    """Copy the public names of ``boxkite.<module>`` into a module's namespace.

    Without boxkite, the ImportError says what to install rather than naming a missing module.
    """
    try:
        source = importlib.import_module("boxkite." + module)
    except ImportError as error:
        raise ImportError(
            '{} needs boxkite: pip install "bdrk[model-monitoring]" (or pip install boxkite); '
            "{}".format(namespace.get("__name__", "bedrock_client.bedrock.metrics"), error)
        ) from error
    names = getattr(source, "__all__", None) or [
        name for name in vars(source) if not name.startswith("_")
    ]
    for name in names:
        namespace[name] = getattr(source, name)
    return source
