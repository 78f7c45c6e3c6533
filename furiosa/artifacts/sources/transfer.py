"""One transfer attempt (HTTP GET with resume, or a local copy) into a partial file.

Attempts raise :class:`~furiosa.artifacts.errors.Transient` (retry the same source),
:class:`~furiosa.artifacts.errors.Permanent` (move on to the next source) or
:class:`~furiosa.artifacts.errors.LocalWriteError` (the local disk failed: stop). Retrying,
verification and the order of sources live in :mod:`furiosa.artifacts.sources.download`.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import logging
import random
import re
import socket
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from furiosa.artifacts import atomic
from furiosa.artifacts.errors import DeadlineExceeded, GaveUp, LocalWriteError, Permanent, Transient
from furiosa.artifacts.sources import diskio

USER_AGENT = "furiosa-artifacts (python-urllib)"
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def check_deadline(deadline_at: float | None, what: str = "download") -> float | None:
    """Seconds left before ``deadline_at`` (a ``time.monotonic()`` value), None when there is none.

    Raises:
        DeadlineExceeded: no time is left.
    """
    if deadline_at is None:
        return None
    left = deadline_at - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded(f"{what} did not finish before its overall deadline")
    return left


def describe(exc: BaseException, timeout: float) -> tuple[bool, str]:
    """(transient?, human reason) for an exception raised while talking to a server."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code in RETRY_STATUSES, f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else OSError(str(exc.reason))
    if isinstance(exc, socket.gaierror):
        return False, f"cannot resolve host name ({exc.strerror or exc}); offline?"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return False, f"TLS certificate verification failed ({exc.verify_message})"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return True, f"timed out (no data for {timeout:g} s)"
    if isinstance(exc, ConnectionRefusedError):
        return True, "connection refused (server down?)"
    if isinstance(exc, http.client.InvalidURL):
        return False, f"invalid URL ({exc})"
    if isinstance(exc, (ConnectionError, http.client.HTTPException)):
        return True, f"connection lost ({type(exc).__name__}: {exc})"
    if isinstance(exc, OSError):
        return True, f"network error ({exc.strerror or exc})"
    return False, f"{type(exc).__name__}: {exc}"


def retry_after(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks us to wait; None (the default backoff) when it is absent or
    unparseable (``soon``, a year-99999 date, garbage). Callers cap it at :data:`MAX_BACKOFF_S`."""
    value = (value or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(min(int(value[:12]), 10**9))
    try:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time())
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


def _retry_after(exc: urllib.error.HTTPError) -> float | None:
    return retry_after(exc.headers.get("Retry-After") if exc.headers else None)


def _content_range(value: str | None) -> tuple[int, int, int | None] | None:
    match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value or "")
    if not match:
        return None
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), int(match.group(2)), total


def _open_partial(partial: Path, mode: str):
    try:
        return open(partial, mode)
    except OSError as exc:
        raise LocalWriteError(partial, exc) from exc


def pump(read, partial: Path, mode: str, *, start: int, size: int | None, bar: tqdm,
          deadline_at: float | None = None) -> int:
    """Copy ``read(n)`` chunks into ``partial`` (opened with ``mode``); return the new length.

    More than ``size`` bytes is refused as soon as it arrives (at most one chunk past the pin is read,
    none written); past ``deadline_at`` the copy stops with :class:`DeadlineExceeded`.
    """
    fh = _open_partial(partial, mode)
    received = start
    try:
        while True:
            check_deadline(deadline_at)
            chunk = read(diskio.CHUNK_SIZE)  # network errors propagate to the caller
            if not chunk:
                break
            received += len(chunk)
            if size is not None and received > size:
                raise Permanent(f"sent more than the expected {size} bytes (wrong file?)")
            try:
                diskio.write_chunk(fh, chunk)
            except OSError as exc:
                raise LocalWriteError(partial, exc) from exc
            bar.update(len(chunk))
    finally:
        try:
            diskio.finish_file(fh)  # keep what arrived, durable, for a resume
        except OSError as exc:
            raise LocalWriteError(partial, exc) from exc
        finally:
            with contextlib.suppress(OSError):
                fh.close()
    return received


def http_attempt(url: str, partial: Path, *, size: int | None, timeout: float, bar: tqdm,
                 deadline_at: float | None = None) -> None:
    """One GET of ``url`` into ``partial``, resuming from its current length.

    ``timeout`` bounds each connect and read; ``deadline_at`` (``time.monotonic()``) the whole attempt, so a
    server dripping a byte just inside ``timeout`` cannot keep it going.
    """
    left = check_deadline(deadline_at)
    timeout = min(timeout, left) if left is not None else timeout
    offset = partial.stat().st_size if partial.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except ValueError as exc:  # malformed URL
        raise Permanent(f"invalid URL ({exc})") from exc
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            raise Transient("server refused the resume range (HTTP 416)", restart=True) from exc
        transient, reason = describe(exc, timeout)
        if transient:
            raise Transient(reason, retry_after=_retry_after(exc)) from exc
        raise Permanent(reason) from exc
    with response:
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if response.status == 206 and offset:
            parsed = _content_range(response.headers.get("Content-Range"))
            if parsed is None or parsed[0] != offset:
                raise Transient(
                    f"bad Content-Range {response.headers.get('Content-Range')!r} for a resume from byte {offset}",
                    restart=True,
                )
            total = parsed[2]
            if size is not None and total is not None and total != size:
                raise Permanent(f"server reports {total} bytes, expected {size} (wrong file?)")
            mode, start = "ab", offset
            expected_end = total if total is not None else (offset + length if length is not None else size)
        elif response.status == 206:
            raise Permanent("HTTP 206 to a request without Range")
        else:  # 200: whole body, whether or not we asked for a range
            if size is not None and length is not None and length != size:
                raise Permanent(f"server reports {length} bytes, expected {size} (wrong file?)")
            mode, start = "wb", 0
            expected_end = length if length is not None else size
        bar.reset(total=expected_end if expected_end is not None else size)
        bar.update(start)
        # read1 returns what has arrived, so a timeout loses nothing already received
        read = getattr(response, "read1", response.read)
        received = pump(read, partial, mode, start=start, size=size, bar=bar, deadline_at=deadline_at)
    if expected_end is not None and received < expected_end:
        raise Transient(f"connection closed after {received} of {expected_end} bytes")


def local_attempt(path: str, partial: Path, *, size: int | None, bar: tqdm) -> None:
    src = Path(path)
    if not src.is_file():
        raise Permanent("not found")
    actual = src.stat().st_size
    if size is not None and actual != size:
        raise Permanent(f"size is {actual} bytes, expected {size}")
    bar.reset(total=actual)
    try:
        fin = open(src, "rb")
    except OSError as exc:
        raise Permanent(f"cannot read ({exc.strerror or exc})") from exc

    def read(n: int) -> bytes:
        try:
            return fin.read(n)
        except OSError as exc:
            raise Permanent(f"cannot read ({exc.strerror or exc})") from exc

    with fin:
        pump(read, partial, "wb", start=0, size=size, bar=bar)


MAX_BACKOFF_S = 30.0


def with_retries(attempt, partial: Path, *, retries: int, timeout: float, backoff: float, where: str,
                 log: logging.Logger, deadline_at: float | None = None) -> None:
    """Run ``attempt`` (which fills ``partial``) until it succeeds, retrying transient failures.

    Backoff is exponential with jitter, capped at :data:`MAX_BACKOFF_S`, and honours ``Retry-After``.
    A :class:`Permanent` failure deletes ``partial`` and propagates; a transient one asking for a restart
    deletes it and retries. Raises :class:`GaveUp` when an error is not retryable or retries run out.
    """
    failures = 0
    while True:
        try:
            attempt()
            return
        except Permanent:
            atomic.remove_quietly(partial)
            raise
        except (Transient, OSError, http.client.HTTPException) as exc:
            if isinstance(exc, Transient):
                reason, retry_after = exc.reason, exc.retry_after
                if exc.restart:
                    atomic.remove_quietly(partial)
            else:
                transient, reason = describe(exc, timeout)
                retry_after = None
                if not transient:
                    raise GaveUp(reason) from exc
            failures += 1
            if failures > retries:
                raise GaveUp(f"{reason} ({failures} attempt{'s' if failures > 1 else ''})") from exc
            delay = min(MAX_BACKOFF_S, backoff * 2 ** (failures - 1)) * random.uniform(0.8, 1.2)
            if retry_after is not None:
                delay = max(delay, min(retry_after, MAX_BACKOFF_S))
            left = check_deadline(deadline_at)
            if left is not None and delay >= left:
                raise DeadlineExceeded(f"{reason}; no time left for retry {failures} before the overall deadline")
            log.warning("%s: %s; retry %d of %d in %.1f s", where, reason, failures, retries, delay)
            time.sleep(delay)
