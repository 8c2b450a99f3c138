#!/usr/bin/env bash
# Prints the path of Envoy Gateway's helm chart for VERSION, taken from the
# release's Go module (the same source its OCI chart is packaged from, with
# values.tmpl.yaml's image placeholders filled in the same way). For machines
# that reach the Go module proxy but not docker.io: the offline checks and
# the local cluster.
#
#   chart.sh VERSION WORKDIR
set -o errexit -o nounset -o pipefail
version=${1:?usage: chart.sh VERSION WORKDIR} work=${2:?usage: chart.sh VERSION WORKDIR}
mkdir -p "$work"
module_dir=$(cd "$work" && go mod download -json "github.com/envoyproxy/gateway@$version" \
  | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -d "$module_dir/charts/gateway-helm" ] || { echo "no chart in github.com/envoyproxy/gateway@$version" >&2; exit 1; }
chart=$work/gateway-helm-$version
rm -rf "$chart"
cp -r "$module_dir/charts/gateway-helm" "$chart"
chmod -R u+w "$chart"
sed -e "s|\${GatewayImage}|docker.io/envoyproxy/gateway:$version|" \
  -e 's|${GatewayImagePullPolicy}|IfNotPresent|' "$chart/values.tmpl.yaml" >"$chart/values.yaml"
echo "$chart"
