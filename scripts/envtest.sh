#!/usr/bin/env bash
# Runs a command against a throwaway Kubernetes control plane, the way controller-runtime's envtest
# does: binaries from $KUBEBUILDER_ASSETS (kube-apiserver and etcd; kube-controller-manager too if
# it is there, so Jobs get status and garbage collection works), fresh certificates, a temporary
# data directory, loopback addresses only. The command gets MODELSWAP_E2E_KUBECONFIG (cluster-admin
# by client certificate) and MODELSWAP_E2E_CONTROL_PLANE (a script that restarts kube-apiserver,
# for the tests that cut the operator's watches). Everything is stopped and removed whatever
# happens, and the command's exit code is returned.
#
#   KUBEBUILDER_ASSETS=/path/to/bin scripts/envtest.sh ctest --test-dir build -L e2e
set -euo pipefail
assets=${KUBEBUILDER_ASSETS:?set KUBEBUILDER_ASSETS to a folder with kube-apiserver and etcd}
for b in kube-apiserver etcd; do
  [ -x "$assets/$b" ] || { echo "envtest: $assets/$b is missing or not executable" >&2; exit 2; }
done
[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }

here=$(pwd)
dir=$(mktemp -d /tmp/modelswap-envtest-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -f "$dir/apiserver.pid" ] && kill "$(cat "$dir/apiserver.pid")" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
etcd_port=$(free_port) peer_port=$(free_port) api_port=$(free_port)

# Certificates: a CA, the API server's serving certificate for the loopback names, an admin
# client certificate (system:masters) and the service-account signing key.
cd "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=envtest-ca \
  -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver -keyout apiserver.key \
  -out apiserver.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n' > san.ext
openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 \
  -extfile san.ext -out apiserver.crt 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=admin/O=system:masters" -keyout admin.key \
  -out admin.csr 2>/dev/null
openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 \
  -out admin.crt 2>/dev/null
openssl genrsa -out sa.key 2048 2>/dev/null
openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null

b64() { base64 -w0 < "$1"; }
cat > kubeconfig <<KC
apiVersion: v1
kind: Config
clusters:
- name: envtest
  cluster: {server: "https://127.0.0.1:$api_port", certificate-authority-data: "$(b64 ca.crt)"}
users:
- name: admin
  user: {client-certificate-data: "$(b64 admin.crt)", client-key-data: "$(b64 admin.key)"}
contexts:
- name: envtest
  context: {cluster: envtest, user: admin, namespace: default}
current-context: envtest
KC

"$assets/etcd" --data-dir "$dir/etcd" --name envtest \
  --listen-client-urls "http://127.0.0.1:$etcd_port" \
  --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "envtest=http://127.0.0.1:$peer_port" >"$dir/etcd.log" 2>&1 &
pids+=($!)

# kube-apiserver runs from a small script so a test can restart it (same flags, same etcd).
cat > "$dir/restart-apiserver" <<SH
#!/usr/bin/env bash
# Stops kube-apiserver (SIGTERM, then SIGKILL after 10 s) and starts it again; returns once
# /readyz answers again (60 s at most).
set -euo pipefail
if [ -f "$dir/apiserver.pid" ]; then
  old=\$(cat "$dir/apiserver.pid"); kill "\$old" 2>/dev/null || true
  for _ in \$(seq 100); do kill -0 "\$old" 2>/dev/null || break; sleep 0.1; done
  kill -9 "\$old" 2>/dev/null || true
fi
"$assets/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \\
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port $api_port \\
  --cert-dir "$dir/certs" --tls-cert-file "$dir/apiserver.crt" \\
  --tls-private-key-file "$dir/apiserver.key" --client-ca-file "$dir/ca.crt" \\
  --authorization-mode RBAC --allow-privileged=true \\
  --service-cluster-ip-range 10.0.0.0/24 \\
  --service-account-issuer https://kubernetes.default.svc.cluster.local \\
  --service-account-key-file "$dir/sa.pub" \\
  --service-account-signing-key-file "$dir/sa.key" \\
  --disable-admission-plugins ServiceAccount >>"$dir/apiserver.log" 2>&1 &
echo \$! > "$dir/apiserver.pid"
for _ in \$(seq 600); do
  if curl -sf --cacert "$dir/ca.crt" --cert "$dir/admin.crt" --key "$dir/admin.key" \\
       "https://127.0.0.1:$api_port/readyz" >/dev/null; then exit 0; fi
  kill -0 "\$(cat "$dir/apiserver.pid")" 2>/dev/null || { tail -20 "$dir/apiserver.log" >&2; exit 1; }
  sleep 0.1
done
echo "envtest: kube-apiserver not ready after 60 s" >&2; tail -20 "$dir/apiserver.log" >&2; exit 1
SH
chmod +x "$dir/restart-apiserver"
echo "envtest: starting etcd and kube-apiserver on 127.0.0.1:$api_port ($dir)"
"$dir/restart-apiserver" || { tail -20 "$dir/etcd.log" >&2; exit 1; }

if [ -x "$assets/kube-controller-manager" ]; then
  "$assets/kube-controller-manager" --kubeconfig "$dir/kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 0 --leader-elect=false \
    --controllers 'job,garbagecollector,namespace,ttl-after-finished,serviceaccount-token' \
    --service-account-private-key-file "$dir/sa.key" --root-ca-file "$dir/ca.crt" \
    >"$dir/controller-manager.log" 2>&1 &
  pids+=($!)
  echo "envtest: kube-controller-manager started"
fi

cd "$here"
status=0
MODELSWAP_E2E_KUBECONFIG="$dir/kubeconfig" MODELSWAP_E2E_CONTROL_PLANE="$dir/restart-apiserver" \
  "$@" || status=$?
exit "$status"
