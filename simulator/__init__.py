"""A local SageMaker-Runtime-compatible endpoint serving real scikit-learn models."""

from simulator.app import RecordedRequest, Simulator, ThrottlingError, create_app
from simulator.models import FEATURES, MODEL_KINDS, Dataset, Model, Pool, make_dataset, train_models
from simulator.server import serve
from simulator.spec import (
    DEFAULT_ENDPOINT,
    DEFAULT_VARIANTS,
    ERROR_KINDS,
    SimulatorSpec,
    VariantSpec,
    parse_variants,
)
from simulator.traffic import (
    TrafficRecord,
    enable_context_header,
    generate,
    invoke_one,
    make_client,
)

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_VARIANTS",
    "ERROR_KINDS",
    "FEATURES",
    "MODEL_KINDS",
    "Dataset",
    "Model",
    "Pool",
    "RecordedRequest",
    "Simulator",
    "SimulatorSpec",
    "ThrottlingError",
    "TrafficRecord",
    "VariantSpec",
    "create_app",
    "enable_context_header",
    "generate",
    "invoke_one",
    "make_client",
    "make_dataset",
    "parse_variants",
    "serve",
    "train_models",
]
