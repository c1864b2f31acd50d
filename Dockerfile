# Clarion in a container: a slim Python image, a non-root user, the
# settings of deploy/clarion.toml. See docs/deployment.md.
#
#   docker build -t clarion .
#   docker run --rm -p 6001:6001 -p 127.0.0.1:9100:9100 \
#     -e CLARION_APP_ID=1 -e CLARION_APP_KEY=... -e CLARION_APP_SECRET=... \
#     clarion
#
# `docker stop` sends SIGTERM and kills after 10 s by default; give the drain
# room with `docker stop -t 30` (stop_grace_period: 30s in Compose).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --user-group --home-dir /var/lib/clarion \
        --shell /usr/sbin/nologin clarion \
    && install -d -o clarion -g clarion -m 0750 /var/lib/clarion

WORKDIR /opt/clarion
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install '.[redis,postgres]' && rm -rf /opt/clarion/src /opt/clarion/build

COPY deploy/clarion.toml /etc/clarion/clarion.toml

USER clarion
WORKDIR /var/lib/clarion
VOLUME ["/var/lib/clarion"]
EXPOSE 6001 9100
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9100/up', timeout=2)"]
CMD ["clarion", "serve", "--config", "/etc/clarion/clarion.toml", "--host", "0.0.0.0"]
