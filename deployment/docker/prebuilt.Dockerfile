# The sagaflow services image from a sagaflow binary built beforehand (as CI
# has, after its tests), instead of compiling it in a build stage as
# deployment/docker/Dockerfile does: seconds instead of many minutes. The same
# runtime (deployment/docker/runtime-setup: the Debian packages of the
# libraries the binary loads, curl, the user sagaflow), the same tag
# (sagaflow:local) and entry point, so the compose file runs either.
#
# The binary must have been built on Debian 12 (bookworm), like the base.
# Build context: a directory 'deployment/docker/compose prepare --binaries DIR'
# stages, var/docker/services-context/, holding this file, the binary
# (sagaflow, its debug information stripped), runtime-packages (the list
# deployment/docker/runtime-packages printed for it), runtime-setup and
# sagaflow-init. The stage "runtime-base" (no binary yet) is tagged
# sagaflow-base:local and is the base of the Kafka image too.
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS runtime-base
COPY runtime-packages /usr/share/sagaflow/runtime-packages
COPY runtime-setup /usr/local/sbin/sagaflow-runtime-setup
RUN sagaflow-runtime-setup /usr/share/sagaflow/runtime-packages

FROM runtime-base
LABEL org.sagaflow.binary=prebuilt
COPY sagaflow /usr/local/bin/sagaflow
COPY sagaflow-init /usr/local/bin/sagaflow-init
USER sagaflow
WORKDIR /data
VOLUME /data
ENTRYPOINT ["sagaflow"]
CMD ["--help"]
