# Ops Console image: web (default CMD), Celery worker and beat, and migrations all
# run from this one image; Kubernetes manifests are in deploy/kubernetes/.
FROM python:3.11-slim

# PYTHONPATH: every command (gunicorn, celery, manage.py) imports the apps from
# /app, beside templates/ and static/; the copies pip installs are the same code.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app

WORKDIR /app

COPY . .

RUN pip install -c constraints.txt . \
    && rm -rf build *.egg-info \
    && python -m compileall -q core opsconsole tenants smtp audit auditlog accounts

# Static files, compressed and with hashed names (whitenoise). DEBUG=true lets
# settings load without real secrets; STATIC_MANIFEST=true writes the manifest
# that production (DEBUG=false) reads. These values exist only in this step.
RUN DEBUG=true STATIC_MANIFEST=true \
    SECRET_KEY=build-time-only-not-a-secret \
    FERNET_KEYS=build-time-only-not-a-secret \
    python manage.py collectstatic --noinput

# Code stays owned by root and read-only for the app user.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin app
USER 10001:10001

EXPOSE 8000

CMD ["gunicorn", "opsconsole.wsgi:application", "--config", "gunicorn.conf.py"]
