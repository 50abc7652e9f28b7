"""Amazon SageMaker Runtime ``InvokeEndpoint``, signed as botocore signs it, over aiohttp.

boto3 costs ~0.6 ms of CPU per call; this backend keeps only what the call needs:
botocore's credential chain (refreshable credentials re-read per call), Signature
Version 4 (service ``sagemaker``, the service model's ``signingName``) computed as
botocore's ``SigV4Auth`` computes it but with the signing key cached
(``router.backends._sigv4``), and one pooled keep-alive aiohttp session. The
request is the service model's: ``POST /endpoints/{EndpointName}/invocations``
with the ``X-Amzn-SageMaker-*`` headers; errors are read as botocore's rest-json
parser reads them.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import botocore.session
from botocore.credentials import Credentials, ReadOnlyCredentials, RefreshableCredentials
from yarl import URL

from router.backends._retry import Failure, RetryQuota, backoff_s, classify
from router.backends._sigv4 import SigV4Signer, canonical_path
from router.backends.base import (
    H_CUSTOM,
    H_INVOKED,
    H_TARGET,
    InvokeRequest,
    InvokeResult,
    SessionPool,
    common_headers,
)
from router.errors import InternalFailure, ServiceUnavailable

SIGNING_NAME = "sagemaker"  # sagemaker-runtime's metadata.signingName
SERVICE_ID = "sagemaker-runtime"


def resolve_region(region: str | None, session: botocore.session.Session) -> str:
    """``region``, else AWS_REGION, AWS_DEFAULT_REGION, then the AWS config file's."""
    found = (region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
             or session.get_config_variable("region"))
    if not found:
        raise ValueError("no AWS region: pass one, or set AWS_REGION or AWS_DEFAULT_REGION, "
                         "or region in the AWS config file")
    return str(found)


def resolve_endpoint_url(endpoint_url: str | None, region: str,
                         session: botocore.session.Session) -> str:
    """``endpoint_url``, else AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME, AWS_ENDPOINT_URL, else
    botocore's own resolution (``https://runtime.sagemaker.{region}.amazonaws.com``,
    or what the config file, FIPS or the partition say)."""
    found = (endpoint_url or os.environ.get("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME")
             or os.environ.get("AWS_ENDPOINT_URL"))
    if not found:
        client: Any = session.create_client(SERVICE_ID, region_name=region)
        found = str(client.meta.endpoint_url)
    return found.rstrip("/")


def _host(url: str) -> str:
    """The Host header for ``url``, default port left out (as aiohttp and botocore do)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != {"http": 80, "https": 443}.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


class SageMakerBackend:
    """Calls ``InvokeEndpoint`` with the chosen variant as ``TargetVariant``.

    ``max_attempts`` counts every attempt (botocore's standard mode: 3). Throttling
    (after retries) and unreachable endpoints raise ServiceUnavailable; SageMaker's
    own ModelError, ValidationError, ModelNotReadyException and InternalFailure
    come through as the router's classes of the same names.
    """

    def __init__(self, region: str | None = None, endpoint_url: str | None = None, *,
                 max_attempts: int = 3, backoff_base_s: float = 1.0,
                 max_backoff_s: float = 20.0, connect_timeout_s: float = 5.0,
                 read_timeout_s: float = 65.0, max_connections: int = 100,
                 session: botocore.session.Session | None = None) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self._session = session if session is not None else botocore.session.Session()
        self.region = resolve_region(region, self._session)
        self.endpoint_url = resolve_endpoint_url(endpoint_url, self.region, self._session)
        self.max_attempts = max_attempts
        self._backoff = (backoff_base_s, max_backoff_s)
        self._pool = SessionPool(max_connections=max_connections,
                                 connect_timeout_s=connect_timeout_s,
                                 read_timeout_s=read_timeout_s)
        self.quota = RetryQuota()
        self._credentials: Credentials | None = None
        self._signer = SigV4Signer(SIGNING_NAME, self.region)
        self._urls: dict[str, tuple[str, URL]] = {}  # endpoint: (canonical path, URL)
        # Sent and signed as given: botocore then need not parse the URL twice per call.
        self._host = _host(self.endpoint_url)

    async def start(self) -> None:
        """Resolve credentials (the chain may call instance metadata: off the loop)."""
        if self._credentials is None:
            credentials = await asyncio.to_thread(self._session.get_credentials)
            if credentials is None:
                raise RuntimeError("no AWS credentials found (environment, shared "
                                   "credentials or config file, container or instance role)")
            self._credentials = credentials
        self._pool.open()

    async def close(self) -> None:
        """Close the connection pool."""
        await self._pool.close()

    def _url(self, endpoint: str) -> tuple[str, URL]:
        url = self._urls.get(endpoint)
        if url is None:
            text = f"{self.endpoint_url}/endpoints/{quote(endpoint, safe='')}/invocations"
            url = self._urls[endpoint] = (canonical_path(text), URL(text, encoded=True))
        return url

    async def _frozen_credentials(self) -> ReadOnlyCredentials:
        """The credentials now; a refresh (which may call STS or IMDS) runs off the loop."""
        credentials = self._credentials
        if credentials is None:
            raise InternalFailure("SageMaker backend used before start()")
        if isinstance(credentials, RefreshableCredentials) and credentials.refresh_needed():
            return await asyncio.to_thread(credentials.get_frozen_credentials)
        return credentials.get_frozen_credentials()

    async def _attempt(self, http: aiohttp.ClientSession, url: tuple[str, URL],
                       headers: dict[str, str], request: InvokeRequest) -> InvokeResult | Failure:
        # Signed per attempt: a retry gets a fresh date (and refreshed credentials).
        signed = self._signer.sign(await self._frozen_credentials(), url[0], headers,
                                   request.body)
        try:
            async with http.post(url[1], data=request.body, headers=signed) as response:
                body = await response.read()
                if 200 <= response.status < 300:
                    return InvokeResult(
                        body, response.headers.get("Content-Type", "application/octet-stream"),
                        response.headers.get(H_INVOKED, request.variant),
                        response.headers.get(H_CUSTOM))
                return classify(response.status, response.headers, body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Failure(ServiceUnavailable(f"SageMaker Runtime unreachable at "
                                              f"{self.endpoint_url}: {type(exc).__name__}: "
                                              f"{exc}"), True, connection=True)

    async def invoke(self, request: InvokeRequest) -> InvokeResult:
        """Invoke ``request.variant`` of ``request.endpoint``, retrying as botocore does."""
        http = self._pool.session
        if http is None:
            raise InternalFailure("SageMaker backend used before start()")
        url = self._url(request.endpoint)
        headers = common_headers(request)
        headers["Host"] = self._host
        if request.variant:
            headers[H_TARGET] = request.variant
        spent = 0
        attempt = 1
        while True:
            outcome = await self._attempt(http, url, headers, request)
            if isinstance(outcome, InvokeResult):
                self.quota.release(spent)
                return outcome
            if not outcome.retryable or attempt >= self.max_attempts:
                raise outcome.error
            tokens = self.quota.acquire(timeout_error=outcome.connection)
            if not tokens:
                raise outcome.error
            spent += tokens
            await asyncio.sleep(backoff_s(attempt, *self._backoff))
            attempt += 1
