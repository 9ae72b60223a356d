"""Fixtures of the erth_sync tests: the Hrana server they sync with and a
temporary directory per test.

The server is named by ERTH_TEST_HRANA_URL (token, if it needs one, in
ERTH_TEST_HRANA_TOKEN): `cargo xtask test python` starts a local
`tursodb --sync-server` and sets it; any other server works too. It may be
shared with other runs, so tests tag their rows and compare only those.
"""

import os
import uuid

import pytest


@pytest.fixture(scope="session")
def server():
    """(url, token) of the test server; the tests fail without one."""
    url = os.environ.get("ERTH_TEST_HRANA_URL")
    if not url:
        pytest.fail("ERTH_TEST_HRANA_URL is not set: run these tests with `cargo xtask test python`")
    return url, os.environ.get("ERTH_TEST_HRANA_TOKEN") or None


@pytest.fixture
def tag():
    """A value unique to this test, for its rows."""
    return str(uuid.uuid4())
