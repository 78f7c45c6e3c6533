"""Fetch one content-addressed object from a DVC remote into the md5 cache, verified.

Local remotes are copied with :func:`furiosa.artifacts.sources.cache.insert` (hashed while
copied). HTTP(S) and S3 objects stream into ``blobs/md5/<hex>.incomplete`` under the blob's
lock, resuming a partial with a ``Range`` request; connection errors, timeouts and truncated
bodies are retried with backoff, 4xx answers are not. The finished file is checked against
the md5 and size from ``dvc.lock`` and only then renamed into the cache: a corrupt object is
deleted and reported, never cached.
"""

from __future__ import annotations

import logging
import threading
import urllib.error
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from furiosa.artifacts import atomic
from furiosa.artifacts.errors import (
    ChecksumError,
    DownloadError,
    GaveUp,
    LocalWriteError,
    Permanent,
    RemoteFailure,
    Transient,
)
from furiosa.artifacts.sources import cache, diskio
from furiosa.artifacts.sources.transfer import http_attempt, pump, with_retries
from furiosa.artifacts.storage.remote import Remote

log = logging.getLogger(__name__)

#: why a remote failed: ``unreachable``, ``forbidden`` (credentials), ``missing``, ``error``
FAILURE_HINTS = {
    "unreachable": "check the URL/endpoint and the network; once a binary is cached it resolves offline",
    "forbidden": "the server refused the credentials",
    "missing": "the object is not on the remote: push it with `dvc push` from a repository that has it",
    "error": "",
}


def _permanent(kind: str, reason: str) -> Permanent:
    exc = Permanent(reason)
    exc.kind = kind  # type: ignore[attr-defined]
    return exc


def _kind_of(exc: Permanent) -> str:
    kind = getattr(exc, "kind", None)
    if kind:
        return kind
    cause = exc.__cause__
    if isinstance(cause, urllib.error.HTTPError):
        return {401: "forbidden", 403: "forbidden", 404: "missing", 410: "missing"}.get(cause.code, "error")
    if str(exc).startswith("cannot resolve host"):
        return "unreachable"
    return "error"


def _attempts(attempt: Callable[[], None], partial: Path, *, retries: int, timeout: float, backoff: float,
              where: str) -> None:
    """Run ``attempt`` until it fills ``partial`` or fails for good (raises RemoteFailure)."""
    try:
        with_retries(attempt, partial, retries=retries, timeout=timeout, backoff=backoff, where=where, log=log)
    except Permanent as exc:
        raise RemoteFailure(_kind_of(exc), str(exc)) from exc
    except GaveUp as exc:
        raise RemoteFailure("unreachable", str(exc)) from exc


# --------------------------------------------------------------------------- S3


class S3Clients:
    """boto3 clients made on first use and shared by the threads of one resolve call.

    Clients are thread-safe, their creation is not. Each call makes its own, so credentials
    from the environment or the config are read afresh every time.
    """

    def __init__(self) -> None:
        self._clients: dict[tuple, object] = {}
        self._lock = threading.Lock()

    def get(self, remote: Remote, *, timeout: float):
        key = (remote.url, remote.options, timeout)
        with self._lock:
            if key not in self._clients:
                self._clients[key] = _make_s3_client(remote, timeout=timeout)
            return self._clients[key]


def _make_s3_client(remote: Remote, *, timeout: float):
    try:
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config
    except ImportError:
        raise RemoteFailure(
            "error", "reading an s3:// remote needs boto3: `pip install boto3` (or install DVC and run `dvc pull`)"
        ) from None
    from botocore.exceptions import BotoCoreError

    opt = remote.option
    try:
        session = boto3.session.Session(
            aws_access_key_id=opt("access_key_id"),
            aws_secret_access_key=opt("secret_access_key"),
            aws_session_token=opt("session_token"),
            profile_name=opt("profile"),
            region_name=opt("region"),
        )
    except BotoCoreError as exc:  # e.g. ProfileNotFound
        raise RemoteFailure("forbidden", str(exc)) from None
    anonymous = (opt("allow_anonymous_login") or "").lower() in ("true", "1", "yes")
    config = Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"mode": "standard", "total_max_attempts": 1},  # we retry ourselves
        **({"signature_version": UNSIGNED} if anonymous else {}),
    )
    ssl_verify = opt("ssl_verify")
    if ssl_verify is not None and ssl_verify.lower() in ("true", "false"):
        ssl_verify = ssl_verify.lower() == "true"  # else: a CA bundle path
    return session.client(
        "s3",
        endpoint_url=opt("endpointurl"),
        use_ssl=(opt("use_ssl") or "true").lower() != "false",
        verify=ssl_verify,
        config=config,
    )


def _s3_bucket_key(remote: Remote, key: str) -> tuple[str, str]:
    rest = remote.url.split("://", 1)[1]
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/{key}" if prefix else key


def _s3_attempt(client, remote: Remote, key: str, partial: Path, *, size: int | None, bar: tqdm) -> None:
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        EndpointConnectionError,
        NoCredentialsError,
        ReadTimeoutError,
        ResponseStreamingError,
    )

    bucket, object_name = _s3_bucket_key(remote, key)
    offset = partial.stat().st_size if partial.exists() else 0
    try:
        ranged = {"Range": f"bytes={offset}-"} if offset else {}
        response = client.get_object(Bucket=bucket, Key=object_name, **ranged)
    except NoCredentialsError as exc:
        raise _permanent("forbidden", "no AWS credentials found") from exc
    except EndpointConnectionError as exc:
        raise Transient(f"cannot connect to the endpoint ({exc})") from exc
    except (ConnectionClosedError, ReadTimeoutError) as exc:
        raise Transient(str(exc)) from exc
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        reason = f"HTTP {status} {code}".strip()
        if status == 416 or code == "InvalidRange":
            raise Transient("server refused the resume range", restart=True) from exc
        if status in (401, 403) or code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise _permanent("forbidden", reason) from exc
        if status == 404 or code in ("NoSuchKey", "NoSuchBucket"):
            raise _permanent("missing", reason + (" (the bucket does not exist)" if code == "NoSuchBucket" else ""))
        if status is not None and status >= 500:
            raise Transient(reason) from exc
        raise _permanent("error", reason) from exc
    body = response["Body"]
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    total = response.get("ContentLength")
    if offset and status == 206:
        mode, start = "ab", offset
        expected_end = offset + total if total is not None else size
    else:
        mode, start = "wb", 0
        expected_end = total if total is not None else size
        if size is not None and total is not None and total != size:
            raise _permanent("error", f"the object has {total} bytes, dvc.lock says {size}")
    bar.reset(total=expected_end)
    bar.update(start)

    def read(n: int) -> bytes:
        try:
            return body.read(n)
        except (ReadTimeoutError, ResponseStreamingError, ConnectionClosedError) as exc:
            raise Transient(f"connection lost ({type(exc).__name__})") from exc

    with body:
        received = pump(read, partial, mode, start=start, size=size, bar=bar)
    if expected_end is not None and received < expected_end:
        raise Transient(f"connection closed after {received} of {expected_end} bytes")


# --------------------------------------------------------------------------- entry point


def fetch_object(
    remote: Remote,
    key: str,
    md5: str,
    *,
    size: int | None,
    bar: tqdm,
    retries: int,
    timeout: float,
    backoff: float,
    clients: S3Clients | None = None,
) -> Path:
    """The verified cache entry for ``md5``, fetched from ``remote``'s object ``key``.

    Raises:
        RemoteFailure: the remote is unreachable, refuses the credentials, lacks the object.
        ChecksumError: the object's bytes do not match ``md5``/``size`` (nothing is cached).
        DownloadError: the local disk could not be written.
    """
    location = remote.location(key)
    if remote.kind == "local":
        src = Path(location)
        if not src.is_file():
            if not remote.path.is_dir():  # type: ignore[union-attr]
                raise RemoteFailure("unreachable", f"the remote directory {remote.path} does not exist")
            raise RemoteFailure("missing", "no such file")
        try:
            blob = cache.insert(src, "md5", md5, size=size)
        except ChecksumError as exc:
            raise ChecksumError(str(exc).replace(f"{src}: ", "")) from None
        bar.update(blob.stat().st_size)
        return blob
    blob = cache.cache_path("md5", md5)
    partial = diskio.incomplete_path(blob)
    with cache.blob_lock("md5", md5):
        hit = cache.lookup("md5", md5, size=size)
        if hit is not None:  # another thread or process finished it
            return hit
        blob.parent.mkdir(parents=True, exist_ok=True)
        if partial.exists() and size is not None and partial.stat().st_size > size:
            atomic.remove_quietly(partial)
        if remote.kind == "http":
            def attempt() -> None:
                http_attempt(remote.object_url(key), partial, size=size, timeout=timeout, bar=bar)
        else:
            client = (clients or S3Clients()).get(remote, timeout=timeout)

            def attempt() -> None:
                _s3_attempt(client, remote, key, partial, size=size, bar=bar)
        restarted = False
        while True:
            resumed = partial.exists() and partial.stat().st_size > 0
            try:
                _attempts(attempt, partial, retries=retries, timeout=timeout, backoff=backoff, where=location)
            except LocalWriteError as exc:
                atomic.remove_quietly(partial)
                raise DownloadError(
                    f"cannot write {exc.path}: {exc.error.strerror or exc.error}; free some space or set "
                    f"{cache.ENV_HOME} to a writable directory on a larger disk"
                ) from exc.error
            try:
                cache.verify_file(partial, md5=md5, size=size)
            except ChecksumError as exc:
                atomic.remove_quietly(partial)
                if resumed and not restarted:  # the kept prefix may be what is wrong
                    restarted = True
                    log.warning("%s: %s after resuming; downloading again from zero", location, exc)
                    continue
                raise ChecksumError(str(exc).replace(f"{partial}: ", "")) from None
            return atomic.commit(partial, blob, mode=cache.BLOB_MODE)
