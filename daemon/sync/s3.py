"""The object store, as the uploader needs it: HEAD, PUT and resumable multipart, under a bandwidth cap.

minio-py (not boto3): a pure-Python client of ~1 MB over urllib3, where boto3 + botocore install ~90 MB
and take about a second to import on a Pi; it speaks to AWS S3, MinIO, Ceph RGW, Garage and rclone alike.
Its multipart calls (_create_multipart_upload, _upload_part, _complete_multipart_upload) are underscored
but are what its own put_object uses; pyproject pins minio < 8 and this module is the only caller.

Every failure becomes a `StoreError` whose `kind` says what the uploader should do: wait for the store
(offline, auth, bucket), or start the multipart upload again (upload_gone).
"""

from __future__ import annotations

import io
import re
import threading
from dataclasses import dataclass, field
from typing import Literal

import urllib3
from minio import Minio
from minio.datatypes import Part
from minio.error import InvalidResponseError, S3Error, ServerError
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from daemon.clock import SYSTEM_CLOCK, Clock

SHA256_METADATA = "sha256"  # x-amz-meta-sha256: the file's sha256, checked by HEAD before a file counts as synced
# Sent through the cap in slices this big, so the uplink sees a steady rate instead of part-sized bursts.
THROTTLE_SLICE = 16 * 1024
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0

ErrorKind = Literal["offline", "auth", "bucket", "upload_gone", "missing", "refused"]
_AUTH_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}


class StoreError(Exception):
    def __init__(self, kind: ErrorKind, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class StoreSettings:
    endpoint: str  # host:port
    bucket: str
    access_key: str
    secret_key: str = field(repr=False)
    secure: bool = True
    region: str | None = None


@dataclass(frozen=True, slots=True)
class StoredObject:
    size: int
    sha256: str | None  # from the object's metadata; None when it has none


class Throttle:
    """A token bucket shared by every connection of one client: at most `rate` bytes a second on average."""

    def __init__(self, rate: float, clock: Clock = SYSTEM_CLOCK):
        self.rate = rate  # bytes per second; 0 = no cap
        self._clock = clock
        self._lock = threading.Lock()
        self._next_free = 0.0  # monotonic time at which the bytes taken so far have been paid for
        self.bytes_sent = 0

    def take(self, size: int) -> None:
        with self._lock:
            self.bytes_sent += size
            if not self.rate:
                return
            now = self._clock.monotonic()
            start = max(now, self._next_free)
            self._next_free = start + size / self.rate
            wait = start - now
        if wait > 0:
            self._clock.sleep(wait)


class _ThrottledSend:
    throttle: Throttle

    def send(self, data) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            super().send(data)
            return
        view = memoryview(data)
        for start in range(0, len(view), THROTTLE_SLICE):
            piece = view[start:start + THROTTLE_SLICE]
            self.throttle.take(len(piece))
            super().send(piece)


def _http_client(throttle: Throttle) -> urllib3.PoolManager:
    """urllib3 with the cap on every request body, and no retries of its own (the uploader backs off)."""
    attrs = {"throttle": throttle}
    http = type("ThrottledHTTPConnection", (_ThrottledSend, HTTPConnection), attrs)
    https = type("ThrottledHTTPSConnection", (_ThrottledSend, HTTPSConnection), attrs)
    manager = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_S, read=READ_TIMEOUT_S), retries=False, maxsize=2
    )
    manager.pool_classes_by_scheme = {
        "http": type("ThrottledPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
        "https": type("ThrottledHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https}),
    }
    return manager


class ObjectStore:
    def __init__(self, settings: StoreSettings, throttle: Throttle):
        self.settings = settings
        self.throttle = throttle
        self._bucket = settings.bucket
        self._client = Minio(
            settings.endpoint, access_key=settings.access_key, secret_key=settings.secret_key,
            secure=settings.secure, region=settings.region, http_client=_http_client(throttle),
        )

    @property
    def address(self) -> str:
        return f"{'https' if self.settings.secure else 'http'}://{self.settings.endpoint}/{self._bucket}"

    def head(self, key: str) -> StoredObject | None:
        """The object's size and sha256 metadata, or None when there is no such object."""
        try:
            stat = _call(self._client.stat_object, self._bucket, key)
        except StoreError as exc:
            if exc.kind == "missing":
                return None
            raise
        metadata = stat.metadata or {}
        return StoredObject(stat.size or 0, metadata.get(f"x-amz-meta-{SHA256_METADATA}"))

    def put(self, key: str, data: bytes, sha256: str, content_type: str) -> None:
        _call(self._client.put_object, self._bucket, key, io.BytesIO(data), len(data),
              content_type=content_type, metadata={SHA256_METADATA: sha256})

    def start_multipart(self, key: str, sha256: str, content_type: str) -> str:
        headers = {"Content-Type": content_type, f"x-amz-meta-{SHA256_METADATA}": sha256}
        return _call(self._client._create_multipart_upload, self._bucket, key, headers)

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        """Returns the part's ETag, which completing the upload needs."""
        return _call(self._client._upload_part, self._bucket, key, data, None, upload_id, number)

    def complete_multipart(self, key: str, upload_id: str, etags: list[tuple[int, str]]) -> None:
        parts = [Part(number, etag) for number, etag in etags]
        _call(self._client._complete_multipart_upload, self._bucket, key, upload_id, parts)

    def bucket_exists(self) -> bool:
        return _call(self._client.bucket_exists, self._bucket)


def _call(function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except S3Error as exc:
        raise _classify(exc.code, exc.message, args[0]) from None
    except ServerError as exc:
        raise StoreError("offline", f"the store answered HTTP {exc.status_code}") from None
    except InvalidResponseError as exc:
        # Some stores (rclone, older Ceph) answer errors as text/xml, which minio does not parse.
        code = _ERROR_CODE.search(str(exc))
        if code:
            raise _classify(code.group(1), "", args[0]) from None
        raise StoreError("offline", f"the store gave an unreadable answer: {str(exc)[:120]}") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise StoreError("offline", f"cannot reach the store ({_network_problem(exc)})") from None


def _network_problem(exc: BaseException) -> str:
    """In a technician's words: urllib3 wraps the socket's error ("...: [Errno 111] Connection refused")."""
    cause = getattr(exc, "reason", None) or exc
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror.lower()
    words = str(cause).rsplit("] ", 1)
    return words[1].lower() if len(words) == 2 else type(cause).__name__


_ERROR_CODE = re.compile(r"<Code>(\w+)</Code>")


def _classify(code: str, message: str, bucket: str) -> StoreError:
    if code in _AUTH_CODES:
        return StoreError("auth", f"the store refused the credentials: {code}")
    if code == "NoSuchBucket":
        return StoreError("bucket", f"no bucket {bucket!r} on the store (the kiosk never creates one)")
    kind = {"NoSuchUpload": "upload_gone", "NoSuchKey": "missing"}.get(code, "refused")
    return StoreError(kind, f"{code}: {message}" if message else code)
