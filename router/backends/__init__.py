"""Where the router sends inference calls: SageMaker Runtime, or plain HTTP model servers."""

from router.backends.base import Backend, InvokeRequest, InvokeResult
from router.backends.http import HttpBackend
from router.backends.sagemaker import SageMakerBackend

__all__ = ["Backend", "HttpBackend", "InvokeRequest", "InvokeResult", "SageMakerBackend"]
