"""Blob stores (Redis and directory) and the quota arithmetic, against a real Redis."""

from __future__ import annotations

import os
import time

import pytest
import redis
from conftest import with_overrides

from avatarbot.errors import FileTooBigError
from avatarbot.tasks.blobs import (
    BlobMissingError,
    DirectoryBlobStore,
    RedisBlobStore,
    blob_store_from_settings,
)
from avatarbot.tasks.quotas import QuotaLimits


@pytest.fixture(params=["redis", "directory"])
def make_store(request, redis_server, tmp_path):
    def make(ttl_s: int = 60, max_bytes: int = 1000):
        if request.param == "redis":
            client = redis.Redis.from_url(redis_server.url)
            return RedisBlobStore(client, ttl_s=ttl_s, max_bytes=max_bytes, prefix=f"blobtest{time.monotonic_ns()}")
        return DirectoryBlobStore(tmp_path / "blobs", ttl_s=ttl_s, max_bytes=max_bytes)

    return make


def test_blobs_are_content_addressed(make_store):
    store = make_store()
    key = store.put(b"hello", ".png")
    assert key.endswith(".png") and len(key) == 64 + 4
    assert store.put(b"hello", ".png") == key  # same bytes, same key
    assert store.put(b"hello!", ".png") != key
    assert store.get(key) == b"hello" and store.exists(key)
    with pytest.raises(BlobMissingError):
        store.get("0" * 64 + ".png")
    with pytest.raises(BlobMissingError):
        store.get("../../etc/passwd")


def test_blobs_are_size_capped(make_store):
    store = make_store(max_bytes=10)
    store.put(b"x" * 10, ".bin")
    with pytest.raises(FileTooBigError):
        store.put(b"x" * 11, ".bin")


def test_blobs_expire_after_their_ttl(make_store):
    store = make_store(ttl_s=1)
    key = store.put(b"short-lived", ".wav")
    assert store.exists(key)
    time.sleep(1.2)
    assert not store.exists(key)
    with pytest.raises(BlobMissingError):
        store.get(key)


def test_directory_store_sweeps_expired_files(tmp_path):
    store = DirectoryBlobStore(tmp_path, ttl_s=60, max_bytes=100)
    old = store.put(b"old", ".png")
    fresh = store.put(b"fresh", ".png")
    past = time.time() - 120
    os.utime(store._path(old), (past, past))
    assert store.sweep() == 1
    assert not store._path(old).exists() and store.get(fresh) == b"fresh"


def test_blob_store_is_chosen_by_settings(settings, tmp_path):
    assert isinstance(blob_store_from_settings(settings), RedisBlobStore)
    directory = blob_store_from_settings(with_overrides(settings, jobs={"blob_store": "directory"}))
    assert isinstance(directory, DirectoryBlobStore) and directory.root == tmp_path / "blobs"


def test_a_server_can_tighten_quotas_but_never_loosen_them(settings):
    strict = with_overrides(settings, jobs={"max_per_user_per_hour": 10, "max_per_server_per_hour": 0})
    limits = QuotaLimits.from_settings(strict, {"max_per_user_per_hour": 3, "max_per_server_per_hour": 50})
    assert limits.max_per_user_per_hour == 3 and limits.max_per_server_per_hour == 50
    loose = QuotaLimits.from_settings(strict, {"max_per_user_per_hour": 1000, "max_concurrent_per_user": 0})
    assert loose.max_per_user_per_hour == 10
    assert loose.max_concurrent_per_user == settings.jobs.max_concurrent_per_user
