# syntax=docker/dockerfile:1
# jobd in a container: a build stage makes the wheel and its dependencies' wheels; the
# runtime stage installs them into a clean slim image and runs as a non-root user.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
RUN pip install --no-cache-dir build==1.2.2
COPY pyproject.toml README.md ./
COPY jobd ./jobd
RUN python -m build --wheel --outdir /dist \
 && pip wheel --no-cache-dir --wheel-dir /dist /dist/jobd-*.whl

FROM python:3.11-slim-bookworm
ARG JOBD_VERSION=0.1.0
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 jobd \
 && useradd --system --uid 10001 --gid jobd --home-dir /var/lib/jobd jobd \
 && mkdir -p /etc/jobd /var/lib/jobd && chown 10001:10001 /var/lib/jobd
COPY --from=build /dist /tmp/dist
RUN pip install --no-cache-dir --no-index --find-links /tmp/dist "jobd==${JOBD_VERSION}" && rm -rf /tmp/dist
WORKDIR /var/lib/jobd
USER 10001:10001
EXPOSE 8370
# The admin listener must listen beyond loopback in a container; it then needs a token:
# set JOBD_ADMIN_TOKEN and admin.listen: 0.0.0.0:8370 in the config.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8370/healthz', timeout=2).status == 200 else 1)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["jobd"]
CMD ["run", "-c", "/etc/jobd/jobd.yaml"]
