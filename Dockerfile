# The gameops image the manifests name: ghcr.io/gameops/gameops:<crate version>
# (plugin/plugin.yaml, manifests/gameops/deployment.yaml; tests/image.rs checks
# every reference names the crate version).
#
#   docker build -t ghcr.io/gameops/gameops:0.1.0 .      (or podman/buildah)
#
# One static-enough binary on a distroless base: no shell, non-root (uid and
# gid 8737, as the manifests' securityContext runs it), read-only root
# filesystem friendly (gameops writes only where --data-dir points).
FROM docker.io/library/rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --locked --release && strip target/release/gameops

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/gameops /usr/local/bin/gameops
USER 8737:8737
EXPOSE 4355 6443
ENTRYPOINT ["/usr/local/bin/gameops"]
CMD ["plugin", "--listen", "0.0.0.0:4355", "--log-format", "json"]
