# The cutover worker and CLI. Build: docker build -t cutover .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/cutover-worker ./worker \
 && CGO_ENABLED=0 go build -trimpath -o /out/cutover ./starter

FROM debian:bookworm-slim
# readpst converts PST uploads; ca-certificates verifies IMAP/TLS peers.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates pst-utils \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /var/lib/cutover --create-home cutover
COPY --from=build /out/cutover-worker /out/cutover /usr/local/bin/
USER cutover
WORKDIR /var/lib/cutover
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/cutover-worker"]
