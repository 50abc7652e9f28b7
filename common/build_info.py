"""``bandit_build_info{version, python}`` 1: which build a process runs (for dashboards).

The version is the installed distribution's (``pyproject.toml``); ``unknown`` when the
package runs from a checkout that was never installed.
"""

from __future__ import annotations

import platform
from importlib import metadata

from prometheus_client import CollectorRegistry, Gauge

DISTRIBUTION = "bandit-router"


def version() -> str:
    """The installed version of bandit-router, or ``unknown``."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


def register_build_info(registry: CollectorRegistry) -> None:
    """Add ``bandit_build_info`` to ``registry``."""
    gauge = Gauge("bandit_build_info", "Always 1; the labels name the running build",
                  ("version", "python"), registry=registry)
    gauge.labels(version(), platform.python_version()).set(1)
