# The hotline service. Mirrors .ci/run: a plain `pip install .` on Python 3.11.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HOTLINE_DATA_DIR=/data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY hotline ./hotline
RUN pip install . \
 && useradd --system --create-home --home-dir /home/hotline hotline \
 && mkdir -p /data && chown hotline /data

USER hotline
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"
CMD ["hotline", "serve", "--host", "0.0.0.0", "--port", "8080"]
