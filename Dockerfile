# Strata container image: a static-ish release build on Debian's slim base.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p strata

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/strata strata && mkdir -p /var/lib/strata && chown strata /var/lib/strata
COPY --from=build /src/target/release/strata /usr/local/bin/strata
USER strata
EXPOSE 9201
ENTRYPOINT ["/usr/local/bin/strata"]
CMD ["serve", "--data-dir", "/var/lib/strata", "--listen", "0.0.0.0:9201"]
