# The image the manifests deploy: the binary plus the schemas, run as non-root.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin execwatch

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/execwatch /execwatch
COPY schemas /schemas
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/execwatch"]
