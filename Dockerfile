# syntax=docker/dockerfile:1
# Switchyard built from this repository and run on Debian slim as an unprivileged user.
#
#   podman build -t switchyard .          # or: docker build -t switchyard .
#   podman run -d --name switchyard \
#     -p 1883:1883 -p 8083:8083 -p 8084:8084 -p 8883:8883 -p 18083:18083 \
#     -p 1884:1884/udp -p 5683:5683/udp -p 5783:5783/udp \
#     -v switchyard-data:/var/lib/switchyard switchyard
#
# The configuration is /etc/switchyard/switchyard.toml (config/switchyard.toml with the
# installed paths, scripts/packaged-config.sh); mount your own over it, or set any key with a
# SWITCHYARD_<SECTION>__<KEY> environment variable. Logs go to stdout.

FROM docker.io/library/rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin switchyard \
    && install -D -m 0755 target/release/switchyard /out/usr/bin/switchyard \
    && strip --strip-debug /out/usr/bin/switchyard \
    && scripts/packaged-config.sh config/switchyard.toml /out/etc/switchyard/switchyard.toml \
    && install -D -m 0644 config/acl.toml /out/etc/switchyard/acl.toml \
    && install -d /out/etc/switchyard/lwm2m_xml \
    && install -m 0644 config/lwm2m_xml/*.xml /out/etc/switchyard/lwm2m_xml/

FROM docker.io/library/debian:bookworm-slim
RUN groupadd --system switchyard \
    && useradd --system --gid switchyard --home-dir /var/lib/switchyard --no-create-home \
        --shell /usr/sbin/nologin switchyard \
    && install -d -o switchyard -g switchyard -m 0750 /var/lib/switchyard
COPY --from=build /out/ /
USER switchyard
WORKDIR /var/lib/switchyard
VOLUME ["/var/lib/switchyard"]
# MQTT (TCP, WebSocket, secure WebSocket, TLS), the dashboard and REST API; MQTT-SN, CoAP, LwM2M.
EXPOSE 1883 8083 8084 8883 18083 1884/udp 5683/udp 5783/udp
# SIGTERM is the graceful stop: connections closed with their reason, sessions committed.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
    CMD ["/usr/bin/switchyard", "--config", "/etc/switchyard/switchyard.toml", "ctl", "status"]
ENTRYPOINT ["/usr/bin/switchyard", "--config", "/etc/switchyard/switchyard.toml"]
CMD ["run"]
