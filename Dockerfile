# voxmon daemon image. The SQLite database lives in the /data volume.
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY exporter ./exporter
COPY rollup ./rollup
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --home-dir /data voxmon \
    && mkdir -p /data && chown voxmon /data

USER voxmon
WORKDIR /data
ENV VOXMON_DB_PATH=/data/voxmon.db
EXPOSE 9473
VOLUME ["/data"]
HEALTHCHECK --interval=30s --timeout=3s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9473/readyz', timeout=2)"

# A container must listen on 0.0.0.0, which voxmon refuses without tokens unless the
# configuration says auth = "none" (see docker-compose.yml and the README).
ENTRYPOINT ["voxmon"]
CMD ["serve", "--host", "0.0.0.0"]
