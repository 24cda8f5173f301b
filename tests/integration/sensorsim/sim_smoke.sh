#!/bin/bash
# sim_smoke.sh: integration smoke test: edgegw-sensorsim against a Mosquitto started here on
# 127.0.0.1 (free port): 200 sessions (QoS 0/1/2 mix) plus 4 subscribers on site/#; asserts
# every QoS 1/2 publish was acknowledged and delivered to every subscriber, no errors, and that
# the JSON report parses; then idle sessions answer their keepalive with PINGREQ. Env: SENSORSIM, MOSQUITTO (set by meson).
set -u
SIM=${SENSORSIM:?} MOSQ=${MOSQUITTO:-mosquitto} PY=/usr/bin/python3
dir=$(mktemp -d /tmp/egw-simsmoke.XXXXXX)
mpid=
cleanup() { [ -n "$mpid" ] && kill "$mpid" 2>/dev/null && wait "$mpid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$dir/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 100000
max_inflight_messages 100
CONF
"$MOSQ" -c "$dir/mosquitto.conf" >"$dir/mosquitto.log" 2>&1 &
mpid=$!
for _ in $(seq 50); do
	$PY -c "import socket; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null && break
	sleep 0.1
done

for ver in 3.1.1 5; do
	"$SIM" --host 127.0.0.1 --port "$port" --sessions 200 --subscribers 4 --sub-filter 'site/#' \
		--qos 0:40,1:30,2:30 --rate 5 --duration 3 --drain 5 --keepalive 2 --payload 32 \
		--mqtt-version "$ver" --json >"$dir/out.txt" 2>"$dir/err.txt"
	rc=$?
	cat "$dir/out.txt" "$dir/err.txt"
	[ $rc -eq 0 ] || { echo "FAIL: sensorsim exited $rc"; exit 1; }
	tail -n 1 "$dir/out.txt" | $PY -c '
import json, sys
r = json.loads(sys.stdin.read())
subs = r["subscribers"]
def check(cond, what):
    if not cond:
        print("FAIL:", what); sys.exit(1)
check(r["connected"] == 204 and r["connect_failures"] == 0, "all 204 sessions connected")
check(r["published"][1] > 100 and r["published"][2] > 100, "QoS 1 and 2 were published")
for q in (1, 2):
    check(r["acked"][q] == r["published"][q], "every QoS %d publish acknowledged" % q)
    check(r["delivered"][q] == r["published"][q] * subs, "every QoS %d publish delivered to each subscriber" % q)
check(r["delivered"][0] > 0, "QoS 0 deliveries")
check(r["latency_ns"]["count"] == sum(r["delivered"]), "a latency sample per delivery")
check(r["latency_ns"]["p50"] > 0 and r["latency_ns"]["p99"] >= r["latency_ns"]["p50"], "latency quantiles ordered")
check(r["ack_latency_ns"]["count"] == r["acked"][1] + r["acked"][2], "an ack latency sample per QoS 1/2 publish")
check(r["ack_latency_ns"]["p99"] >= r["ack_latency_ns"]["p50"] > 0, "ack latency quantiles ordered")
check(r["errors_total"] == 0, "no errors: %s" % r["errors"])
print("ok: MQTT", r["mqtt"], "published", r["published"], "delivered", r["delivered"])
' || exit 1
done
# Idle sessions keep their connection with PINGREQ (keepalive 1 s: a ping every 0.75 s).
"$SIM" --host 127.0.0.1 --port "$port" --sessions 20 --no-publish --duration 2.5 --keepalive 1 \
	--json --quiet >"$dir/idle.txt" || { echo "FAIL: idle run"; exit 1; }
cat "$dir/idle.txt"
$PY -c '
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])
if not (r["connected"] == 20 and r["pings"] >= 40 and r["errors_total"] == 0 and sum(r["published"]) == 0):
    print("FAIL: idle sessions pinged without errors"); sys.exit(1)
print("ok: idle pings", r["pings"])
' "$dir/idle.txt" || exit 1
echo "PASS"
