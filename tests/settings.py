"""Settings for the test suite: the real settings, with test-only secrets.

The values are set as environment variables (not as settings) so that worker and
server processes started by the tests read exactly the same configuration.
"""

import atexit
import os
import shutil
import socket
import tempfile
import uuid
from pathlib import Path

# A queue of this test session's own, so that messages of other runs on the same
# broker never reach its worker (the worker process inherits this environment).
os.environ.setdefault("CELERY_QUEUE", f"test-{uuid.uuid4().hex[:12]}")
os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-not-for-production")
os.environ.setdefault("FERNET_KEYS", "tests-only-fernet-key-1")
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SESSION_COOKIE_SECURE", "false")
os.environ.setdefault("CSRF_COOKIE_SECURE", "false")
# The test client speaks plain HTTP.
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
# Static files from the app folders; no collectstatic before each run.
os.environ.setdefault("STATIC_MANIFEST", "false")
# The suite's SMTP servers listen on loopback; the network-policy tests take this
# permission away again.
os.environ.setdefault("SMTP_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
# Short timeouts and retries keep failure tests fast.
os.environ.setdefault("SMTP_TIMEOUT", "3")
# A server that drips its replies is cut off after this long.
os.environ.setdefault("SMTP_SESSION_DEADLINE", "8")
os.environ.setdefault("SMTP_RETRY_BASE_SECONDS", "0.2")
os.environ.setdefault("WORKER_HEARTBEAT_INTERVAL", "2")

# The suite's OAuth2 token endpoint (tests/support/oauth2.py) listens on this
# port, with a certificate from a CA the suite writes into this bundle when it
# starts it; worker processes inherit both.
if "SMTP_OAUTH2_CA_BUNDLE" not in os.environ:
    with socket.socket() as _probe:
        _probe.bind(("127.0.0.1", 0))
        _port = _probe.getsockname()[1]
    _bundle = Path(tempfile.mkdtemp(prefix="opsconsole-oauth2-")) / "ca.pem"
    # Gone with the process that made it (worker processes only inherit it).
    atexit.register(shutil.rmtree, _bundle.parent, ignore_errors=True)
    os.environ["SMTP_OAUTH2_CA_BUNDLE"] = str(_bundle)
    os.environ["SMTP_OAUTH2_MICROSOFT_AUTHORITY"] = f"https://localhost:{_port}"
    os.environ["SMTP_OAUTH2_GOOGLE_TOKEN_URL"] = (
        f"https://localhost:{_port}/google/token"
    )

from opsconsole.settings import *  # noqa: F403

# Fast password hashing: the suite creates many users.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
