# syntax=docker/dockerfile:1
# jobd in a container: a build stage makes the wheel and its dependencies' wheels; the
# runtime stage installs them into a clean slim image and runs as a non-root user.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
RUN pip install --no-cache-dir build==1.2.2
COPY pyproject.toml README.md config.example.yaml ./
COPY jobd ./jobd
RUN python -m build --wheel --outdir /dist \
 && pip wheel --no-cache-dir --wheel-dir /dist /dist/pgjobd-*.whl

FROM python:3.11-slim-bookworm
ARG JOBD_VERSION=0.1.0
# Every jobd command reads $JOBD_CONFIG when no -c is given: `docker run IMAGE check`.
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 JOBD_CONFIG=/etc/jobd/jobd.yaml
RUN groupadd --system --gid 10001 jobd \
 && useradd --system --uid 10001 --gid jobd --home-dir /var/lib/jobd jobd \
 && mkdir -p /etc/jobd /var/lib/jobd && chown 10001:10001 /var/lib/jobd
COPY --from=build /dist /tmp/dist
RUN pip install --no-cache-dir --no-index --find-links /tmp/dist "pgjobd==${JOBD_VERSION}" && rm -rf /tmp/dist
WORKDIR /var/lib/jobd
USER 10001:10001
EXPOSE 8370
# The admin listener must listen beyond loopback in a container; it then needs a token:
# set JOBD_ADMIN_TOKEN and admin.listen: 0.0.0.0:8370 in the config. `jobd health` asks
# the listener the config names (any port), and exits 1 when /healthz does not answer 200.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["jobd", "health", "--timeout", "3"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["jobd"]
CMD ["run"]
