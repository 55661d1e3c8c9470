#!/usr/bin/env python3
"""Black-box MQTT 3.1 / 3.1.1 checks with paho-mqtt 2.x, run by tests/mqtt_paho.rs.

    python3 tests/py/paho_client.py CASE --host 127.0.0.1 --port 1883 --protocol 31|311

CASE is roundtrip, will or keepalive. Prints "OK CASE" and exits 0 on success; on failure
prints the reason to stderr and exits 1. Every wait is bounded.
"""
import argparse
import queue
import socket
import sys
import threading
import time

import paho.mqtt.client as mqtt

WAIT = 5.0


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


class Client:
    """A paho client on its own network thread, with received messages in a queue."""

    def __init__(self, args, client_id, will=None, keepalive=10):
        self.protocol = mqtt.MQTTv31 if args.protocol == "31" else mqtt.MQTTv311
        self.c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=True,
            protocol=self.protocol,
            reconnect_on_failure=False,
        )
        self.connected = threading.Event()
        self.connack = None
        self.subacks = queue.Queue()
        self.messages = queue.Queue()
        self.c.on_connect = self._on_connect
        self.c.on_subscribe = self._on_subscribe
        self.c.on_message = lambda _c, _u, msg: self.messages.put(msg)
        if will:
            topic, payload, qos = will
            self.c.will_set(topic, payload, qos=qos, retain=False)
        self.c.connect(args.host, args.port, keepalive=keepalive)
        self.c.loop_start()
        check(self.connected.wait(WAIT), f"{client_id}: no CONNACK within {WAIT}s")
        check(not self.connack.is_failure, f"{client_id}: CONNACK refused: {self.connack}")

    def _on_connect(self, _c, _u, _flags, reason_code, _props):
        self.connack = reason_code
        self.connected.set()

    def _on_subscribe(self, _c, _u, mid, reason_codes, _props):
        self.subacks.put((mid, reason_codes))

    def subscribe(self, topic, qos):
        rc, mid = self.c.subscribe(topic, qos)
        check(rc == mqtt.MQTT_ERR_SUCCESS, f"subscribe {topic}: {rc}")
        try:
            got_mid, codes = self.subacks.get(timeout=WAIT)
        except queue.Empty:
            raise Fail(f"no SUBACK for {topic} within {WAIT}s")
        check(got_mid == mid, f"SUBACK mid {got_mid} != {mid}")
        granted = codes[0].value
        check(granted == qos, f"SUBACK for {topic} granted {granted}, asked {qos}")

    def publish(self, topic, payload, qos):
        info = self.c.publish(topic, payload, qos=qos)
        info.wait_for_publish(timeout=WAIT)
        check(info.is_published(), f"publish {topic} qos {qos} not acknowledged within {WAIT}s")

    def next_message(self, timeout=WAIT):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def case_roundtrip(args):
    """QoS 1 and 2 round trips, in order, at the published QoS; then QoS downgrade."""
    tag = f"p{args.protocol}"
    sub = Client(args, f"{tag}-rt-sub")
    pub = Client(args, f"{tag}-rt-pub")
    topic = f"paho/{tag}/rt"
    sub.subscribe(f"paho/{tag}/#", 2)
    sent = []
    for i in range(10):
        qos = 1 if i < 5 else 2
        payload = f"{tag} message {i} qos {qos}".encode()
        pub.publish(topic, payload, qos)
        sent.append((payload, qos))
    received = []
    for i in range(len(sent)):
        msg = sub.next_message()
        check(msg is not None, f"only {i} of {len(sent)} messages received within {WAIT}s")
        check(msg.topic == topic, f"message {i}: topic {msg.topic!r}")
        check(not msg.retain, f"message {i}: retain flag set on a live message")
        received.append((msg.payload, msg.qos))
    # Order is guaranteed per topic and QoS (MQTT 4.6); paho hands a QoS 2 message over only
    # at PUBREL, so QoS 1 and QoS 2 may interleave differently on the client.
    for qos in (1, 2):
        want = [p for p, q in sent if q == qos]
        got = [p for p, q in received if q == qos]
        check(got == want, f"qos {qos} messages: got {got!r}, want {want!r} (order or qos wrong)")
    extra = sub.next_message(0.5)
    check(extra is None, f"duplicate delivery: {extra and extra.payload!r}")

    # A QoS 1 subscription gets a QoS 2 publish at QoS 1.
    low = Client(args, f"{tag}-rt-low")
    low.subscribe(f"paho/{tag}/low", 1)
    pub.publish(f"paho/{tag}/low", b"downgraded", 2)
    msg = low.next_message()
    check(msg is not None and msg.payload == b"downgraded", "downgraded message not received")
    check(msg.qos == 1, f"delivered at qos {msg.qos}, subscription granted 1")
    for c in (sub, pub, low):
        c.close()


def case_will(args):
    """A client whose socket closes without DISCONNECT has its will published; one that
    disconnects normally does not."""
    tag = f"p{args.protocol}"
    will_topic = f"paho/{tag}/will"
    watcher = Client(args, f"{tag}-w-watch")
    watcher.subscribe(will_topic, 1)

    polite = Client(args, f"{tag}-w-polite", will=(will_topic, b"polite", 1))
    polite.close()

    rude = Client(args, f"{tag}-w-rude", will=(will_topic, b"rude", 1))
    rude.c.loop_stop()  # stop paho's thread first so it cannot send anything more
    sock = rude.c.socket()
    check(sock is not None, "no socket")
    sock.close()

    msg = watcher.next_message()
    check(msg is not None, f"no will within {WAIT}s after the socket closed without DISCONNECT")
    check(msg.payload == b"rude", f"got will {msg.payload!r}: a will fired after a normal DISCONNECT")
    check(msg.qos == 1, f"will delivered at qos {msg.qos}, want 1")
    extra = watcher.next_message(0.7)
    check(extra is None, f"unexpected extra message {extra and extra.payload!r}")
    watcher.close()


def raw_connect(args, client_id, keepalive, will_topic, will_payload):
    """A CONNECT with a will, written by hand so nothing is sent afterwards."""
    name, level = (b"MQIsdp", 3) if args.protocol == "31" else (b"MQTT", 4)

    def s(b):
        return len(b).to_bytes(2, "big") + b

    flags = 0x02 | 0x04  # clean session, will (QoS 0, no retain)
    body = s(name) + bytes([level, flags]) + keepalive.to_bytes(2, "big")
    body += s(client_id.encode()) + s(will_topic.encode()) + s(will_payload)
    check(len(body) < 128, "test CONNECT too long for a 1-byte remaining length")
    sock = socket.create_connection((args.host, args.port), timeout=WAIT)
    sock.sendall(bytes([0x10, len(body)]) + body)
    connack = b""
    while len(connack) < 4:
        chunk = sock.recv(4 - len(connack))
        check(chunk, f"connection closed before CONNACK (got {connack!r})")
        connack += chunk
    check(connack == b"\x20\x02\x00\x00", f"CONNACK {connack!r}, want accepted")
    return sock


def case_keepalive(args):
    """A silent client with keepalive 1 s is closed after 1.5 s (MQTT-3.1.2-24) and its will
    fires."""
    tag = f"p{args.protocol}"
    will_topic = f"paho/{tag}/ka"
    watcher = Client(args, f"{tag}-ka-watch")
    watcher.subscribe(will_topic, 0)
    start = time.monotonic()
    sock = raw_connect(args, f"{tag}-ka-silent", 1, will_topic, b"silent client timed out")
    sock.settimeout(5.0)
    try:
        data = sock.recv(16)
    except socket.timeout:
        raise Fail("keepalive 1 s: connection still open after 5 s of silence")
    except ConnectionResetError:
        data = b""
    elapsed = time.monotonic() - start
    check(data == b"", f"expected the broker to close, got {data!r}")
    check(elapsed >= 1.0, f"closed after {elapsed:.2f}s, before the 1 s keepalive ran out")
    check(elapsed <= 2.5, f"closed after {elapsed:.2f}s; 1.5 x keepalive is 1.5 s")
    msg = watcher.next_message()
    check(msg is not None, f"no will within {WAIT}s of the keepalive timeout")
    check(msg.topic == will_topic and msg.payload == b"silent client timed out",
          f"unexpected will {msg.topic!r} {msg.payload!r}")
    print(f"closed after {elapsed:.2f}s")
    watcher.close()


CASES = {"roundtrip": case_roundtrip, "will": case_will, "keepalive": case_keepalive}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("case", choices=sorted(CASES))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--protocol", choices=["31", "311"], default="311")
    args = p.parse_args()
    try:
        CASES[args.case](args)
    except Fail as e:
        print(f"FAIL {args.case} (MQTT {args.protocol}): {e}", file=sys.stderr)
        return 1
    print(f"OK {args.case}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
