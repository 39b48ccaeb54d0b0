# ERP-integrasjon in one container: the web app (and its background jobs) in one process,
# migrations applied at start. Build: docker build -t erp-integrasjon .
# tests/test_container_install.py performs this same install (no container engine needed).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The app runs as an unprivileged user that owns only the data volume; the code is root's.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app \
    && mkdir /data \
    && chown app:app /data

WORKDIR /app

# Runtime pins only (requirements-dev.txt is for tests and lint).
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

# Only what runs the app.
COPY app.py alembic.ini ./
COPY migrations/ migrations/
COPY models/ models/
COPY routes/ routes/
COPY services/ services/
# The demo (DEMO=true) serves the Tripletex simulator beside the app.
COPY simulators/ simulators/
COPY static/ static/
COPY templates/ templates/
COPY web/ web/

USER 10001:10001
VOLUME /data
ENV DATA_DIR=/data HOST=0.0.0.0 PORT=8000
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]

CMD ["python", "app.py", "run"]
