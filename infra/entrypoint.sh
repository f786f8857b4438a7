#!/bin/sh
# Stand-in for the Prefect base images' /opt/prefect/entrypoint.sh, so this image also runs under the
# stock Azure Container Instances job template (which prefixes every command with that path).
# hygge's own template (infra/aci-job-template.json) sets no entrypoint and runs the command directly.
set -e
exec "$@"
