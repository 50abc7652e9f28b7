"""``bandit-router serve``: the router under uvicorn (uvloop, httptools), one process."""

from __future__ import annotations

import gc
import logging
import os
import sys
from pathlib import Path

import uvicorn

from common.config import ConfigError, Settings, load_settings
from common.config_paths import path_problems
from router.app import create_app


def settings_or_exit(path: Path) -> Settings:
    """The validated settings, or every problem on stderr and exit status 2."""
    try:
        return load_settings(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"bandit-router: {path}: {problem}", file=sys.stderr)
        sys.exit(2)


def _check_aws_credentials() -> None:
    # The SageMaker backend signs every call; without credentials it could only fail
    # at start-up inside uvicorn, with a traceback instead of this line.
    import botocore.session

    if botocore.session.Session().get_credentials() is None:
        print("bandit-router: no AWS credentials for the sagemaker backend: set "
              "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, or a role",
              file=sys.stderr)
        sys.exit(2)


def serve(config: Path, host: str, port: int, log_level: str) -> None:
    """Validate the config, build the app, and serve until interrupted."""
    settings = settings_or_exit(config)
    problems = path_problems(settings, create=True)
    if problems:
        for problem in problems:
            print(f"bandit-router: {config}: {problem}", file=sys.stderr)
        sys.exit(2)
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if any(e.backend == "sagemaker" for e in settings.experiments):
        _check_aws_credentials()
    try:
        if settings.store.startswith("memory://"):
            from .embedded import embedded_app  # the learning loop in this process

            app = embedded_app(settings, environ=os.environ)
        else:
            app = create_app(settings, environ=os.environ)
    except ValueError as exc:  # e.g. no AWS region for a sagemaker backend
        print(f"bandit-router: {exc}", file=sys.stderr)
        sys.exit(2)
    # Everything built so far (modules, config, policies) lives as long as the process.
    # Frozen, the cyclic GC's full collections skip it: ~95k objects took ~27 ms per
    # full collection here, a pause every few hundred requests (bench/README.md).
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=host, port=port, loop="uvloop", http="httptools",
                log_level=log_level, access_log=False, lifespan="on")
