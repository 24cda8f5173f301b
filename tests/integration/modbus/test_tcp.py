#!/usr/bin/python3
"""test_tcp.py: edgegw-agent polling Modbus TCP on loopback (pymodbus; unit ids as behind an
RTU gateway: 1 = every type, 2 = holes, 9 = absent) and publishing over MQTT to a Mosquitto it
does not know is a test. Commands arrive over MQTT too. Halfway the broker is restarted: the
agent reconnects, resubscribes, and QoS 1 traffic continues.  usage: test_tcp.py AGENT"""
import json
import os
import signal
import sys
import time

import harness as h


def main(agent):
    d = h.tmpdir()
    mport, bport = h.free_port(), h.free_port()
    h.start_sim(["--tcp", str(mport), "--units", "1,2"], os.path.join(d, "sim.log"))
    broker = h.start_mosquitto(d, bport)
    sub = h.Subscriber(bport, "site/#")
    stats = os.path.join(d, "stats.json")
    cfg = os.path.join(d, "gateway.yaml")
    h.write_config(cfg, f"""
uplink:
  spool: {{dir: {d}/spool, max_bytes: 16m}}
agent:
  profiles_dir: {h.HERE}/profiles
  topic_prefix: site
  state_dir: {d}/state
  uplink: mqtt
  mqtt: {{host: 127.0.0.1, port: {bport}, client_id: egw-agent-test, keepalive: 5s, version: 3.1.1}}
  commands: {{topic: site/cmd, response_topic: site/cmd/response}}
  stats: {{file: {stats}, interval: 500ms}}
  buses:
    - name: plc
      type: tcp
      host: 127.0.0.1
      port: {mport}
      devices:
        - {{name: gw1, unit_id: 1, profile: alltypes, interval: 300ms, timeout: 200ms, retries: 1}}
        - {{name: gw2, unit_id: 2, profile: holes, interval: 500ms, timeout: 200ms}}
        - {{name: gw9, unit_id: 9, profile: holes, interval: 500ms, timeout: 200ms, retries: 0}}
""")
    log = os.path.join(d, "agent.log")
    p = h.start_agent(agent, cfg, log)
    h.wait_for(lambda: h.points(sub.msgs, "gw1", "smoke"), 5, "first poll over MQTT")
    h.check_alltypes(sub.msgs, "gw1")
    # a command far larger than the agent takes is acknowledged and dropped, not a reconnect loop
    sub.publish("site/cmd", "x" * 400000)
    sub.publish("site/cmd", {"id": "t5", "device": "gw1", "point": "setpoint", "value": 20})
    h.wait_for(lambda: any(m["topic"] == "site/cmd/response" and m["payload"]["id"] == "t5"
                           for m in sub.msgs), 5, "response after an oversized command")
    h.wait_for(lambda: json.load(open(stats))["uplink"]["dropped"] >= 1, 3, "oversized command counted")
    st = json.load(open(stats))
    h.check(st["uplink"]["connects"] == 1, f"reconnected over an oversized command: {st['uplink']}")
    sub.publish("site/cmd", {"id": "t1", "device": "gw1", "point": "setpoint", "value": -12.3})
    sub.publish("site/cmd", {"id": "t2", "device": "gw1", "point": "valve", "value": 1})
    h.wait_for(lambda: {"t1", "t2"} <= {m["payload"].get("id") for m in sub.msgs
                                         if m["topic"] == "site/cmd/response"}, 5, "write responses")

    # freeze the broker (no PUBACKs: QoS 1 heartbeats stay in flight), then kill and restart it:
    # the agent must reconnect, resubscribe and resend what was not acknowledged (DUP)
    sub.close()
    broker.send_signal(signal.SIGSTOP)
    frozen_ms = time.time() * 1000
    time.sleep(2.5)
    broker.kill()
    broker.wait()
    h.start_mosquitto(d, bport)
    sub2 = h.Subscriber(bport, "site/#")
    restarted_ms = time.time() * 1000
    h.wait_for(lambda: h.points(sub2.msgs, "gw1", "constant"), 8, "messages after broker restart")
    h.wait_for(lambda: json.load(open(stats))["uplink"]["connects"] >= 2, 5, "reconnect in stats")
    sub2.publish("site/cmd", {"id": "t3", "device": "gw1", "point": "limit", "value": 99.5})
    sub2.publish("site/cmd", {"id": "t4", "device": "gw2", "point": "a", "value": 1})
    h.wait_for(lambda: {"t3", "t4"} <= {m["payload"].get("id") for m in sub2.msgs
                                         if m["topic"] == "site/cmd/response"}, 5, "responses after reconnect")
    time.sleep(0.6)
    h.stop_agent(p, log)
    msgs = sub.msgs + sub2.msgs
    st = json.load(open(stats))
    sub2.close()

    resp = {m["payload"]["id"]: m["payload"] for m in msgs if m["topic"] == "site/cmd/response"}
    h.check(resp["t1"]["status"] == "ok" and resp["t1"]["value"] == -12.3, f"t1 {resp['t1']}")
    h.check(resp["t5"]["status"] == "ok" and resp["t5"]["value"] == 20, f"t5 {resp['t5']}")
    h.check(resp["t3"]["status"] == "ok" and resp["t3"]["value"] == 99.5, f"t3 {resp['t3']}")
    h.check(resp["t2"]["status"] == "error" and "read-only" in resp["t2"]["reason"], f"t2 {resp['t2']}")
    h.check(resp["t4"]["status"] == "error" and "read-only" in resp["t4"]["reason"], f"t4 {resp['t4']}")
    h.check(any(m["qos"] == 1 for m in msgs if m["topic"] == "site/gw1/setpoint"), "setpoint not QoS 1")
    sp = h.points(msgs, "gw1", "setpoint")
    h.check(sp[-1]["value"] == -12.3, f"setpoint not read back as written: {sp[-1]}")
    got = h.points(msgs, "gw2", "c")
    h.check(got and got[0]["value"] == 120 and got[0]["quality"] == "good", f"gw2/c {got[:1]}")
    got = h.points(msgs, "gw9", "a")
    h.check(got and got[0]["quality"] == "comm-failure", f"gw9 (absent unit) {got[:1]}")
    s1 = h.stats_dev(st, "plc", "gw1")
    h.check(s1["late_polls"] == 0 and s1["lateness_ms_max"] < 300, f"gw1 late with gw9 dead: {s1}")
    h.check(h.stats_dev(st, "plc", "gw9")["state"] == "backoff", "gw9 not backed off")
    h.check(st["uplink"]["connects"] >= 2 and st["uplink"]["disconnects"] >= 1, f"uplink {st['uplink']}")
    h.check(st["uplink"]["resent"] >= 1, f"nothing resent after the broker froze: {st['uplink']}")
    held = [m for m in h.points(sub2.msgs, "gw1", "constant") if frozen_ms < m["ts_ms"] < restarted_ms]
    h.check(held, "QoS 1 readings taken while the broker was frozen never arrived")
    print(f"ok: {len(msgs)} messages over MQTT; uplink {st['uplink']}; gw1 lateness max "
          f"{s1['lateness_ms_max']} ms")


if __name__ == "__main__":
    main(sys.argv[1])
