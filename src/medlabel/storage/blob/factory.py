"""Choosing the blob store from the settings: a local folder, or S3 when ``blob_url`` is set."""

from __future__ import annotations

import logging

from medlabel.core.errors import ConfigurationError
from medlabel.core.settings import Settings
from medlabel.storage.blob.base import BlobStore, BlobStoreError
from medlabel.storage.blob.local import LocalBlobStore

log = logging.getLogger(__name__)


def open_blob_store(settings: Settings, *, check: bool = True) -> BlobStore:
    """The blob store the settings describe.

    ``MEDLABEL_BLOB_URL=s3://bucket/prefix`` selects S3-compatible object storage (endpoint,
    region and credentials from the ``MEDLABEL_S3_*`` settings, else boto3's usual
    ``AWS_*`` variables and files); otherwise blobs live in ``blob_dir``.

    Parameters
    ----------
    settings
        The installation's settings.
    check
        Make sure the bucket answers now, so a wrong URL or endpoint fails at start-up
        rather than at the first upload.

    Raises
    ------
    ConfigurationError
        A malformed ``blob_url``, half-given credentials, or a bucket that cannot be reached.
    MissingDependencyError
        ``blob_url`` is set but boto3 (``pip install 'medlabel[s3]'``) is not installed.

    Examples
    --------
    >>> import tempfile
    >>> s = Settings(home=tempfile.mkdtemp())
    >>> type(open_blob_store(s)).__name__
    'LocalBlobStore'
    """
    if not settings.blob_url:
        return LocalBlobStore(settings.resolved_blob_dir)
    from medlabel.storage.blob.s3 import S3BlobStore, S3Options

    spool = settings.home / "tmp"
    try:
        options = S3Options.from_url(
            settings.blob_url,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key,
            spool_dir=spool,
        )
    except ConfigurationError as exc:
        raise ConfigurationError(f"MEDLABEL_BLOB_URL / MEDLABEL_S3_*: {exc.message}") from None
    store = S3BlobStore(options)
    if check:
        try:
            store.check()
        except BlobStoreError as exc:
            raise ConfigurationError(
                f"MEDLABEL_BLOB_URL={options.url}: {exc.message}. Check that the bucket exists "
                "and MEDLABEL_S3_ENDPOINT_URL, MEDLABEL_S3_REGION and the credentials are right"
            ) from None
    spool.mkdir(parents=True, exist_ok=True)
    log.info("blobs are stored in %r", store)
    return store
