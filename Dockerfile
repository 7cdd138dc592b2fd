# The leaderd image: the static leaderd binary, the example hooks, and a
# busybox /bin/sh with wget for the hooks. The binary is built on the host
# (make images, or: make build); this file only packages it, so it needs no
# Go toolchain image:
#
#   make images                                  # offline base, see scripts/images.sh
#   make build && docker build -t leaderd .      # elsewhere, FROM busybox:1.36
#
# The hooks are at /etc/leaderd/hooks/{promote,demote}.sh; leaderd runs as
# nobody, and /var/lib/leaderd is writable for it (the compose demo keeps its
# hook timeline there).
ARG BASE_IMAGE=busybox:1.36
FROM ${BASE_IMAGE}
COPY bin/leaderd /usr/local/bin/leaderd
COPY examples/hooks/promote.sh examples/hooks/demote.sh /etc/leaderd/hooks/
RUN mkdir -p /var/lib/leaderd && chown 65534:65534 /var/lib/leaderd
USER 65534:65534
EXPOSE 8008
ENTRYPOINT ["/usr/local/bin/leaderd"]
CMD ["run"]
