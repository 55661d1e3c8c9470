"""CoAP gateway cases with aiocoap (PyPI, pinned in scripts/install-test-deps.sh) and
paho-mqtt. Usage: coap_aiocoap.py CASE COAP_HOST:PORT MQTT_HOST:PORT. Prints "OK <case>" and
exits 0 on success; any failed check raises (non-zero exit)."""
import asyncio
import logging
import sys

import aiocoap
import paho.mqtt.client as mqtt
from aiocoap import Code, Message


def mqtt_client(addr, cid):
    host, port = addr.rsplit(":", 1)
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid)
    c.connect(host, int(port))
    c.loop_start()
    return c


async def observe(coap, mqtt_addr):
    ctx = await aiocoap.Context.create_client_context()
    req = Message(code=Code.GET, uri=f"coap://{coap}/ps/dev/+/cmd", observe=0)
    pr = ctx.request(req)
    first = await asyncio.wait_for(pr.response, 5)
    assert first.code == Code.CONTENT, first.code
    assert first.opt.observe == 0, first.opt.observe
    notes = pr.observation.__aiter__()
    pub = mqtt_client(mqtt_addr, "aiocoap-pub")
    await asyncio.sleep(0.3)
    pub.publish("dev/7/cmd", b"on", qos=1).wait_for_publish(5)
    n1 = await asyncio.wait_for(notes.__anext__(), 5)
    assert n1.payload == b"on", n1.payload
    assert n1.mtype == aiocoap.CON, n1.mtype
    assert n1.opt.observe == 1, n1.opt.observe
    pub.publish("dev/8/cmd", b"off", qos=0).wait_for_publish(5)
    n2 = await asyncio.wait_for(notes.__anext__(), 5)
    assert n2.payload == b"off" and n2.mtype == aiocoap.NON, (n2.payload, n2.mtype)
    assert n2.opt.observe == 2, n2.opt.observe
    pub.loop_stop()
    await ctx.shutdown()


class WireLog(logging.Handler):
    """Every message aiocoap logs as received ("Incoming message %r"): the raw stream, before
    aiocoap's own RFC 7641 reordering filter (which silently drops a notification whose Observe
    value is not newer, and so would hide a repeated one)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        if record.msg.startswith("Incoming message") and record.args:
            self.messages.append(record.args[0])


# QoS of each publish in observe_order: every combination of neighbours (0 after 1, 1 after 0,
# 2 after 0 and 1, two CONs and two NONs in a row).
ORDER_QOS = [1, 0, 2, 0, 1, 2, 0, 0, 1, 1, 2, 2, 0]


async def observe_order(coap, mqtt_addr):
    wire = WireLog()
    log = logging.getLogger("coap")
    log.setLevel(logging.DEBUG)
    log.addHandler(wire)
    ctx = await aiocoap.Context.create_client_context()
    pr = ctx.request(Message(code=Code.GET, uri=f"coap://{coap}/ps/order/t", observe=0))
    first = await asyncio.wait_for(pr.response, 5)
    assert first.code == Code.CONTENT and first.opt.observe == 0, (first.code, first.opt.observe)
    token = first.token
    notes = pr.observation.__aiter__()
    # The 2.05 means the subscription exists: every publish from here on is for the observer.
    pub = mqtt_client(mqtt_addr, "aiocoap-order-pub")
    payloads = [f"m{i}-q{q}".encode() for i, q in enumerate(ORDER_QOS)]
    for p, q in zip(payloads, ORDER_QOS):
        pub.publish("order/t", p, qos=q)
    # A last QoS 1 marker: once the application sees it, everything before it has arrived.
    pub.publish("order/t", b"end", qos=1).wait_for_publish(5)
    while True:
        n = await asyncio.wait_for(notes.__anext__(), 10)
        if n.payload == b"end":
            break
    pub.loop_stop()
    await ctx.shutdown()
    got = [m for m in wire.messages if m.token == token and m.mtype in (aiocoap.CON, aiocoap.NON)]
    # A retransmission repeats a message id with the same Observe value and payload; anything
    # else is a notification of its own.
    by_mid = {}
    unique = []
    for m in got:
        seen = by_mid.get(m.mid)
        if seen is None:
            by_mid[m.mid] = m
            unique.append(m)
        else:
            assert (seen.opt.observe, seen.payload) == (m.opt.observe, m.payload), (
                "retransmission changed", m.mid, seen.opt.observe, m.opt.observe)
    trace = [(m.mid, str(m.mtype), m.opt.observe, m.payload) for m in unique]
    assert [m.payload for m in unique] == payloads + [b"end"], trace
    observes = [m.opt.observe for m in unique]
    assert all(a < b for a, b in zip(observes, observes[1:])), trace
    for m, q in zip(unique, ORDER_QOS + [1]):
        # notify_type = qos: QoS 0 -> NON, QoS 1/2 -> CON.
        assert m.mtype == (aiocoap.NON if q == 0 else aiocoap.CON), trace


async def publish(coap, mqtt_addr):
    got = []
    sub = mqtt_client(mqtt_addr, "aiocoap-sub")
    sub.on_message = lambda c, u, m: got.append((m.topic, m.payload, m.retain))
    sub.subscribe("up/#", qos=1)
    await asyncio.sleep(0.5)
    ctx = await aiocoap.Context.create_client_context()
    big = bytes(i % 251 for i in range(10 * 1024))
    for path, payload in [("/ps/up/a?qos=1&retain=true&expiry=60", b"t=1"), ("/ps/up/big", big)]:
        r = await asyncio.wait_for(
            ctx.request(Message(code=Code.POST, uri=f"coap://{coap}{path}", payload=payload)).response, 10)
        assert r.code == Code.CHANGED, (path, r.code)
    for _ in range(50):
        if len(got) >= 2:
            break
        await asyncio.sleep(0.1)
    assert ("up/a", b"t=1", False) in got, got
    assert any(t == "up/big" and p == big for t, p, _ in got), [(t, len(p)) for t, p, _ in got]
    sub.loop_stop()
    await ctx.shutdown()


async def connection(coap, mqtt_addr):
    ctx = await aiocoap.Context.create_client_context()
    base = f"coap://{coap}/mqtt/connection"
    r = await ctx.request(Message(code=Code.POST, uri=f"{base}?clientid=py1&username=u&password=p")).response
    assert r.code == Code.CREATED, r.code
    token = r.payload.decode()
    assert token.isdigit() and 1 <= int(token) <= 4294967295, token
    r = await ctx.request(Message(code=Code.PUT, uri=f"{base}?clientid=py1&token={token}")).response
    assert r.code == Code.CHANGED, r.code
    r = await ctx.request(Message(code=Code.POST, uri=f"coap://{coap}/ps/x?clientid=py1")).response
    assert r.code == Code.BAD_REQUEST, r.code
    r = await ctx.request(Message(code=Code.DELETE, uri=f"{base}?clientid=py1&token={token}")).response
    assert r.code == Code.DELETED, r.code
    await ctx.shutdown()


CASES = {"observe": observe, "observe_order": observe_order, "publish": publish, "connection": connection}

if __name__ == "__main__":
    case, coap, mqtt_addr = sys.argv[1], sys.argv[2], sys.argv[3]
    asyncio.run(CASES[case](coap, mqtt_addr))
    print(f"OK {case}")
