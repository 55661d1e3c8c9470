#!/usr/bin/env python3
"""Black-box MQTT 5.0 checks with paho-mqtt 2.x and raw sockets, run by tests/mqtt5_paho.rs.

    python3 tests/py/paho_v5.py CASE --host 127.0.0.1 --port 1883

Prints "OK CASE" and exits 0 on success; prints the reason to stderr and exits 1 on failure.
Every wait is bounded. Cases that need a broker setting say so in tests/mqtt5_paho.rs.
"""
import argparse
import queue
import socket
import struct
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

WAIT = 5.0


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


class Client:
    """A paho MQTT 5 client on its own network thread; received messages go to a queue."""

    def __init__(self, args, client_id, clean_start=True, expiry=None, will=None, connect_props=None, keepalive=30):
        self.c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,
        )
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.disconnect_reason = None
        self.connack = None
        self.connack_props = None
        self.session_present = None
        self.subacks = queue.Queue()
        self.messages = queue.Queue()
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_subscribe = lambda _c, _u, mid, codes, props: self.subacks.put((mid, codes))
        self.c.on_message = lambda _c, _u, msg: self.messages.put(msg)
        if will:
            topic, payload, qos, props = will
            self.c.will_set(topic, payload, qos=qos, retain=False, properties=props)
        props = connect_props or Properties(PacketTypes.CONNECT)
        if expiry is not None:
            props.SessionExpiryInterval = expiry
        self.c.connect(args.host, args.port, keepalive=keepalive, clean_start=clean_start, properties=props)
        self.c.loop_start()
        check(self.connected.wait(WAIT), f"{client_id}: no CONNACK within {WAIT}s")

    def _on_connect(self, _c, _u, flags, reason_code, props):
        self.connack = reason_code
        self.connack_props = props
        self.session_present = flags.session_present
        self.connected.set()

    def _on_disconnect(self, _c, _u, _flags, reason_code, _props):
        self.disconnect_reason = reason_code
        self.disconnected.set()

    def subscribe(self, topic, qos=1, props=None, **opts):
        options = SubscribeOptions(qos=qos, **opts)
        rc, mid = self.c.subscribe(topic, options=options, properties=props)
        check(rc == mqtt.MQTT_ERR_SUCCESS, f"subscribe {topic}: {rc}")
        try:
            got_mid, codes = self.subacks.get(timeout=WAIT)
        except queue.Empty:
            raise Fail(f"no SUBACK for {topic}")
        check(got_mid == mid, "SUBACK packet id mismatch")
        return codes

    def publish(self, topic, payload, qos=1, retain=False, props=None):
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if qos > 0:
            info.wait_for_publish(timeout=WAIT)
            check(info.is_published(), f"publish {topic} not acknowledged")

    def next(self, timeout=WAIT):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            return None

    def expect(self, what, timeout=WAIT):
        m = self.next(timeout)
        check(m is not None, f"expected {what}, got nothing")
        return m

    def expect_none(self, what, timeout=1.0):
        m = self.next(timeout)
        check(m is None, f"expected no message ({what}), got {m.topic if m else None}")

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()

    def drop(self):
        """Closes the socket without DISCONNECT (an abrupt close)."""
        self.c.loop_stop()
        self.c.socket().close()


# ---------------------------------------------------------------------------------------------
# Raw MQTT 5 over a socket, for the error paths a well-behaved library will not produce.


def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def utf8(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def packet(first, body):
    return bytes([first]) + varint(len(body)) + body


def connect_v5(client_id, keepalive=30, props=b""):
    var = utf8("MQTT") + bytes([5, 0x02]) + struct.pack(">H", keepalive) + varint(len(props)) + props
    return packet(0x10, var + utf8(client_id))


def publish_v5(topic, payload, qos=0, pkid=None, props=b""):
    body = utf8(topic)
    if qos:
        body += struct.pack(">H", pkid)
    body += varint(len(props)) + props + payload
    return packet(0x30 | (qos << 1), body)


TIMEOUT = "timeout"


class Raw:
    def __init__(self, args):
        self.s = socket.create_connection((args.host, args.port), timeout=WAIT)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            self.s.settimeout(max(0.01, deadline - time.time()))
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk

    def read(self, timeout=WAIT):
        """Returns (type, flags, body) of the next packet, None on EOF, TIMEOUT if nothing came."""
        deadline = time.time() + timeout
        try:
            self._fill(2, deadline)
            length, shift, i = 0, 0, 1
            while True:
                self._fill(i + 1, deadline)
                b = self.buf[i]
                length |= (b & 0x7F) << shift
                shift += 7
                i += 1
                if not b & 0x80:
                    break
            self._fill(i + length, deadline)
        except (EOFError, ConnectionResetError):
            return None
        except (socket.timeout, TimeoutError):
            return TIMEOUT
        first = self.buf[0]
        body = self.buf[i : i + length]
        self.buf = self.buf[i + length :]
        return first >> 4, first & 0x0F, body

    def expect_disconnect(self, code, what):
        """Reads until a DISCONNECT; checks its reason code, then that the socket closes."""
        deadline = time.time() + WAIT
        while time.time() < deadline:
            p = self.read(deadline - time.time())
            check(p is not None, f"{what}: closed without DISCONNECT 0x{code:02x}")
            check(p != TIMEOUT, f"{what}: no DISCONNECT 0x{code:02x} within {WAIT}s")
            if p[0] == 14:
                got = p[2][0] if p[2] else 0
                check(got == code, f"{what}: DISCONNECT 0x{got:02x}, expected 0x{code:02x}")
                check(self.read(2.0) is None, f"{what}: socket not closed after DISCONNECT")
                return
        raise Fail(f"{what}: no DISCONNECT")


def connack_props_raw(body):
    """Parses CONNACK properties into {id: raw bytes} for the few ids the tests read."""
    props = {}
    i, length, shift = 2, 0, 0
    while True:
        b = body[i]
        length |= (b & 0x7F) << shift
        shift += 7
        i += 1
        if not b & 0x80:
            break
    end = i + length
    while i < end:
        pid = body[i]
        i += 1
        if pid in (0x11, 0x27):
            props[pid] = struct.unpack(">I", body[i : i + 4])[0]
            i += 4
        elif pid in (0x13, 0x21, 0x22):
            props[pid] = struct.unpack(">H", body[i : i + 2])[0]
            i += 2
        elif pid in (0x24, 0x25, 0x28, 0x29, 0x2A):
            props[pid] = body[i]
            i += 1
        elif pid in (0x12, 0x1A, 0x1C, 0x1F, 0x15):
            n = struct.unpack(">H", body[i : i + 2])[0]
            props[pid] = body[i + 2 : i + 2 + n]
            i += 2 + n
        elif pid == 0x26:
            for _ in range(2):
                n = struct.unpack(">H", body[i : i + 2])[0]
                i += 2 + n
        else:
            raise Fail(f"unexpected CONNACK property 0x{pid:02x}")
    return props


def raw_connect(args, client_id, keepalive=30, props=b""):
    r = Raw(args)
    r.send(connect_v5(client_id, keepalive, props))
    p = r.read()
    check(p not in (None, TIMEOUT) and p[0] == 2, f"{client_id}: no CONNACK")
    check(p[2][1] == 0, f"{client_id}: CONNACK 0x{p[2][1]:02x}")
    return r, p[2]


# ---------------------------------------------------------------------------------------------
# Cases


def case_assigned_id(args):
    c = Client(args, "")
    ids = getattr(c.connack_props, "AssignedClientIdentifier", None)
    check(ids, "no Assigned Client Identifier for an empty client id")
    c.close()


def case_session_resume(args):
    sub = Client(args, "v5-keeper", clean_start=True, expiry=60)
    sub.subscribe("v5/resume", qos=1)
    sub.close()
    pub = Client(args, "v5-pub")
    for i in range(3):
        pub.publish("v5/resume", f"m{i}".encode(), qos=1)
    sub = Client(args, "v5-keeper", clean_start=False, expiry=60)
    check(sub.session_present, "session not present after reconnect within expiry")
    got = [sub.expect(f"queued m{i}").payload for i in range(3)]
    check(got == [b"m0", b"m1", b"m2"], f"queued messages out of order: {got}")
    sub.close()
    fresh = Client(args, "v5-keeper", clean_start=True, expiry=0)
    check(not fresh.session_present, "clean start must discard the session")
    fresh.close()
    # Expiry 0: the session ends with the connection.
    gone = Client(args, "v5-keeper", clean_start=False, expiry=0)
    check(not gone.session_present, "session with expiry 0 must not survive its connection")
    gone.close()
    pub.close()


def case_options(args):
    c = Client(args, "v5-opts")
    other = Client(args, "v5-other")
    c.subscribe("nl/t", qos=1, noLocal=True)
    c.publish("nl/t", b"own", qos=1)
    c.expect_none("no-local: own message")
    other.publish("nl/t", b"theirs", qos=1)
    m = c.expect("no-local: other's message")
    check(m.payload == b"theirs", "no-local delivered the wrong message")
    # Retain as published.
    rap = Client(args, "v5-rap")
    rap.subscribe("rap/t", qos=1, retainAsPublished=True)
    plain = Client(args, "v5-plain")
    plain.subscribe("rap/t", qos=1)
    other.publish("rap/t", b"r", qos=1, retain=True)
    check(rap.expect("rap live").retain, "retain-as-published lost the retain flag")
    check(not plain.expect("plain live").retain, "live delivery must clear retain without rap")
    # Retain handling: 0 sends, 1 only for a new subscription, 2 never.
    rh = Client(args, "v5-rh")
    rh.subscribe("rap/t", qos=1, retainHandling=2)
    rh.expect_none("retain handling 2")
    rh.subscribe("rap/+", qos=1, retainHandling=1)
    check(rh.expect("retain handling 1, new").retain, "retained message without retain flag")
    rh.subscribe("rap/+", qos=1, retainHandling=1)
    rh.expect_none("retain handling 1, existing")
    rh.subscribe("rap/+", qos=1, retainHandling=0)
    rh.expect("retain handling 0")
    other.publish("rap/t", b"", qos=1, retain=True)
    for cl in (c, other, rap, plain, rh):
        cl.close()


def case_sub_ids(args):
    c = Client(args, "v5-subid")
    p1 = Properties(PacketTypes.SUBSCRIBE)
    p1.SubscriptionIdentifier = 7
    c.subscribe("sid/+", qos=1, props=p1)
    p2 = Properties(PacketTypes.SUBSCRIBE)
    p2.SubscriptionIdentifier = 9
    c.subscribe("sid/#", qos=2, props=p2)
    pub = Client(args, "v5-subid-pub")
    pub.publish("sid/x", b"both", qos=2)
    m = c.expect("overlapping subscriptions")
    ids = sorted(getattr(m.properties, "SubscriptionIdentifier", []))
    check(ids == [7, 9], f"subscription identifiers {ids}, expected [7, 9]")
    check(m.qos == 2, f"overlap delivered at QoS {m.qos}, expected the maximum 2")
    c.expect_none("overlapping subscriptions deliver once")
    c.close()
    pub.close()


def case_properties(args):
    c = Client(args, "v5-props")
    c.subscribe("props/t", qos=1)
    pub = Client(args, "v5-props-pub")
    p = Properties(PacketTypes.PUBLISH)
    p.PayloadFormatIndicator = 1
    p.ContentType = "application/json"
    p.ResponseTopic = "props/reply"
    p.CorrelationData = b"\x01\x02corr"
    p.UserProperty = [("a", "1"), ("b", "2"), ("a", "3")]
    pub.publish("props/t", b'{"x":1}', qos=1, props=p)
    m = c.expect("message with properties")
    q = m.properties
    check(q.PayloadFormatIndicator == 1, "payload format indicator lost")
    check(q.ContentType == "application/json", "content type lost")
    check(q.ResponseTopic == "props/reply", "response topic lost")
    check(q.CorrelationData == b"\x01\x02corr", "correlation data lost")
    check(q.UserProperty == [("a", "1"), ("b", "2"), ("a", "3")], f"user properties changed: {q.UserProperty}")
    c.close()
    pub.close()


def case_expiry(args):
    sub = Client(args, "v5-exp", clean_start=True, expiry=60)
    sub.subscribe("exp/t", qos=1)
    sub.close()
    pub = Client(args, "v5-exp-pub")
    short = Properties(PacketTypes.PUBLISH)
    short.MessageExpiryInterval = 1
    pub.publish("exp/t", b"short", qos=1, props=short)
    long = Properties(PacketTypes.PUBLISH)
    long.MessageExpiryInterval = 100
    pub.publish("exp/t", b"long", qos=1, props=long)
    time.sleep(2.2)
    sub = Client(args, "v5-exp", clean_start=False, expiry=60)
    m = sub.expect("the unexpired message")
    check(m.payload == b"long", f"expired message delivered: {m.payload}")
    remaining = m.properties.MessageExpiryInterval
    check(95 <= remaining <= 98, f"remaining expiry {remaining}, expected about 98")
    sub.expect_none("expired message")
    sub.close()
    pub.close()


def case_topic_alias(args):
    sub = Client(args, "v5-alias-sub")
    sub.subscribe("alias/#", qos=1)
    r, _ = raw_connect(args, "v5-alias-raw")
    alias = bytes([0x23, 0x00, 0x05])
    r.send(publish_v5("alias/one", b"first", props=alias))
    r.send(publish_v5("", b"second", props=alias))
    for want in (b"first", b"second"):
        m = sub.expect(f"aliased publish {want}")
        check(m.topic == "alias/one" and m.payload == want, f"alias resolved to {m.topic} {m.payload}")
    # An alias above our Topic Alias Maximum (10 in this test's broker config).
    r.send(publish_v5("alias/two", b"x", props=bytes([0x23, 0x00, 11])))
    r.expect_disconnect(0x94, "topic alias above maximum")
    # An alias never set.
    r2, _ = raw_connect(args, "v5-alias-raw2")
    r2.send(publish_v5("", b"x", props=bytes([0x23, 0x00, 0x03])))
    r2.expect_disconnect(0x82, "unknown topic alias")
    sub.close()


def case_outbound_alias(args):
    # A subscriber that accepts 2 aliases: repeated topics arrive as alias-only PUBLISHes.
    r, _ = raw_connect(args, "v5-outalias", props=bytes([0x22, 0x00, 0x02]))
    sub = b"\x00\x01" + b"\x00" + utf8("oa/#") + b"\x00"
    r.send(packet(0x82, sub))
    p = r.read()
    check(p is not None and p[0] == 9, "no SUBACK")
    pub = Client(args, "v5-outalias-pub")
    for topic in ("oa/a", "oa/a", "oa/b", "oa/c", "oa/a"):
        pub.publish(topic, topic.encode(), qos=0)
    seen = []
    for _ in range(5):
        p = r.read()
        check(p is not None and p[0] == 3, "expected PUBLISH")
        body = p[2]
        n = struct.unpack(">H", body[:2])[0]
        topic = body[2 : 2 + n].decode()
        plen = body[2 + n]
        props = body[3 + n : 3 + n + plen]
        alias = None
        if props[:1] == b"\x23":
            alias = struct.unpack(">H", props[1:3])[0]
        payload = body[3 + n + plen :]
        seen.append((topic, alias, payload.decode()))
    check(seen[0] == ("oa/a", 1, "oa/a"), f"first: {seen[0]}")
    check(seen[1] == ("", 1, "oa/a"), f"second must be alias-only: {seen[1]}")
    check(seen[2] == ("oa/b", 2, "oa/b"), f"third: {seen[2]}")
    check(seen[3] == ("oa/c", None, "oa/c"), f"beyond the client's maximum topics go in full: {seen[3]}")
    check(seen[4] == ("", 1, "oa/a"), f"fifth: {seen[4]}")
    pub.close()


def case_receive_maximum(args):
    # Broker config: max_awaiting_rel = 2, so our Receive Maximum is 2.
    r, body = raw_connect(args, "v5-rm")
    props = connack_props_raw(body)
    check(props.get(0x21) == 2, f"CONNACK Receive Maximum {props.get(0x21)}, expected 2")
    for pkid in (1, 2, 3):
        r.send(publish_v5("rm/t", b"x", qos=2, pkid=pkid))
    for _ in range(2):
        p = r.read()
        check(p is not None and p[0] == 5, "expected PUBREC")
    r.expect_disconnect(0x93, "third unreleased QoS 2 message")


def case_packet_too_large(args):
    # Broker config: max_packet_size = 1024.
    r, body = raw_connect(args, "v5-big")
    props = connack_props_raw(body)
    check(props.get(0x27) == 1024, f"CONNACK Maximum Packet Size {props.get(0x27)}, expected 1024")
    r.send(publish_v5("big/t", b"x" * 2000))
    r.expect_disconnect(0x95, "packet above maximum size")
    # The client's own maximum: a delivery larger than it is dropped, smaller ones arrive.
    small = Properties(PacketTypes.CONNECT)
    small.MaximumPacketSize = 100
    c = Client(args, "v5-small", connect_props=small)
    c.subscribe("big/#", qos=0)
    pub = Client(args, "v5-big-pub")
    pub.publish("big/a", b"y" * 200, qos=0)
    pub.publish("big/b", b"ok", qos=0)
    m = c.expect("the small message")
    check(m.payload == b"ok", "a message larger than the client's maximum was delivered")
    c.close()
    pub.close()


def case_server_keepalive(args):
    # Broker config: server_keepalive = "1s"; the client asked for 60.
    r, body = raw_connect(args, "v5-ska", keepalive=60)
    props = connack_props_raw(body)
    check(props.get(0x13) == 1, f"CONNACK Server Keep Alive {props.get(0x13)}, expected 1")
    start = time.time()
    r.expect_disconnect(0x8D, "server keepalive enforced")
    took = time.time() - start
    check(1.2 <= took <= 3.5, f"keepalive timeout after {took:.1f}s, expected about 1.5s")


def case_takeover(args):
    first = Client(args, "v5-dup")
    second = Client(args, "v5-dup")
    check(first.disconnected.wait(WAIT), "first connection not closed on takeover")
    check(first.disconnect_reason.value == 0x8E, f"takeover reason {first.disconnect_reason}")
    second.close()


def case_auth(args):
    r = Raw(args)
    props = b"\x15" + utf8("SCRAM-SHA-1")
    r.send(connect_v5("v5-auth", props=props))
    p = r.read()
    check(p is not None and p[0] == 2, "no CONNACK")
    check(p[2][1] == 0x8C, f"CONNACK 0x{p[2][1]:02x}, expected 0x8C bad authentication method")
    check(r.read(2.0) is None, "connection not closed after CONNACK 0x8C")


def case_will_delay(args):
    watcher = Client(args, "v5-will-watch")
    watcher.subscribe("wd/#", qos=1)
    wp = Properties(PacketTypes.WILLMESSAGE)
    wp.WillDelayInterval = 2
    dying = Client(args, "v5-will", expiry=60, will=("wd/gone", b"bye", 1, wp))
    dying.drop()
    watcher.expect_none("will before its delay", timeout=1.2)
    m = watcher.expect("delayed will", timeout=3.0)
    check(m.payload == b"bye", "wrong will payload")
    # Reconnecting within the delay cancels the will.
    back = Client(args, "v5-will2", expiry=60, will=("wd/again", b"no", 1, wp))
    back.drop()
    time.sleep(0.5)
    again = Client(args, "v5-will2", clean_start=False, expiry=60)
    watcher.expect_none("will cancelled by reconnect", timeout=2.5)
    again.close()
    # DISCONNECT with reason 0x04 publishes the will (no delay set here).
    w = Client(args, "v5-will3", will=("wd/asked", b"asked", 1, None))
    w.c.disconnect(reasoncode=mqtt.ReasonCode(PacketTypes.DISCONNECT, identifier=4))
    m = watcher.expect("will on DISCONNECT 0x04")
    check(m.topic == "wd/asked", f"got {m.topic}")
    watcher.close()


def case_no_resend_live_resend_on_resume(args):
    # A raw subscriber that never acks: no resend while connected; DUP resend after resume.
    props = b"\x11\x00\x00\x00\x3c"  # session expiry 60
    r, _ = raw_connect(args, "v5-noack", props=props)
    r.send(packet(0x82, b"\x00\x01\x00" + utf8("na/t") + b"\x01"))
    check(r.read()[0] == 9, "no SUBACK")
    pub = Client(args, "v5-noack-pub")
    pub.publish("na/t", b"once", qos=1)
    p = r.read()
    check(p is not None and p[0] == 3 and not p[1] & 0x08, "first delivery missing or DUP")
    # The broker has retry_interval = 1s for MQTT 3.x; MQTT 5 must not resend on a live link.
    check(r.read(2.5) == TIMEOUT, "MQTT 5 message resent on a live connection")
    r.s.close()
    r2 = Raw(args)
    var = utf8("MQTT") + bytes([5, 0x00]) + struct.pack(">H", 30) + varint(len(props)) + props
    r2.send(packet(0x10, var + utf8("v5-noack")))
    p = r2.read()
    check(p is not None and p[0] == 2 and p[2][0] == 1, "session not present on resume")
    p = r2.read()
    check(p is not None and p[0] == 3 and p[1] & 0x08, "unacked message not resent with DUP on resume")
    pub.close()


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=1883)
    args = ap.parse_args()
    try:
        CASES[args.case](args)
    except Fail as e:
        print(f"FAIL {args.case}: {e}", file=sys.stderr)
        return 1
    print(f"OK {args.case}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
