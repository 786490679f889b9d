# The Kafka broker image: a single-node KRaft broker (broker and controller in
# one process) run by deployment/kafka/broker, the script the local
# deployment uses, with a Java runtime from Debian and the broker jars that
# deployment/kafka/fetch resolves from Maven Central (the version pinned in
# deployment/kafka/pom.xml). No image from a registry is needed but the
# Debian base.
#
# The jars are fetched on the host, where Maven's settings (proxies, mirrors,
# trusted certificates) are, so the build context is a directory that
# 'deployment/docker/compose prepare' stages: var/docker/kafka-context/ with
# this file, libs/ (the jars) and deployment/{lib,kafka,docker}/ (the broker's
# scripts, CreateAcls.java, kafka-entrypoint and kafka-setup). By hand:
#   deployment/docker/compose prepare   (stages the context and builds), or
#   docker build --network host -t sagaflow-kafka:local var/docker/kafka-context
#
# Listens on 127.0.0.1:$SAGAFLOW_KAFKA_PORT (default 9092, controller
# $SAGAFLOW_KAFKA_CONTROLLER_PORT, default 9093): run it with host networking.
# With SAGAFLOW_KAFKA_SECURITY=sasl (the compose file's setting) clients must
# authenticate and ACLs are enforced, as for deployment/up: the users and
# passwords are the files given as secrets /run/secrets/kafka_<principal>.
# The same image runs the one-shot "acls" service (deployment/docker/kafka-setup).
# Storage: the volume /var/lib/sagaflow/kafka, formatted on the first start.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
# The JRE's post-install script needs this directory on slim images.
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10002 kafka \
 && useradd --system --uid 10002 --gid kafka --home-dir /var/lib/sagaflow --no-create-home \
      --shell /usr/sbin/nologin kafka \
 && mkdir -p /var/lib/sagaflow/kafka \
 && chown -R kafka:kafka /var/lib/sagaflow
COPY libs /opt/kafka/libs
COPY deployment /opt/sagaflow/deployment
ENV SAGAFLOW_VAR=/var/lib/sagaflow SAGAFLOW_KAFKA_LIBS=/opt/kafka/libs
WORKDIR /var/lib/sagaflow
VOLUME /var/lib/sagaflow/kafka
# Starts as root only to install the credentials Compose hands it as secrets
# (owned by kafka, mode 0600), then runs the command as kafka.
ENTRYPOINT ["/opt/sagaflow/deployment/docker/kafka-entrypoint"]
CMD ["/opt/sagaflow/deployment/kafka/broker", "run"]
