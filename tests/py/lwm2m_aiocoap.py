"""LwM2M gateway case with an aiocoap device (PyPI, pinned in scripts/install-test-deps.sh)
and paho-mqtt as the back-end. Usage: lwm2m_aiocoap.py LWM2M_HOST:PORT MQTT_HOST:PORT.
The device serves /3/0/0 (text), /3/0/9 (text, observable) and /3/0/4 (execute) on one
server socket and registers from that same socket. Prints "OK lwm2m" and exits 0 on success;
any failed check raises (non-zero exit)."""
import asyncio
import json
import sys

import aiocoap
import aiocoap.resource as resource
import paho.mqtt.client as mqtt
from aiocoap import Code, Message

EP = "aiocoap-dev"


class Text(resource.ObservableResource):
    def __init__(self, value):
        super().__init__()
        self.value = value

    async def render_get(self, request):
        return Message(payload=self.value.encode(), content_format=0)

    async def render_put(self, request):
        self.value = request.payload.decode()
        return Message(code=Code.CHANGED)

    def set(self, value):
        self.value = value
        self.updated_state()


class Exec(resource.Resource):
    def __init__(self):
        super().__init__()
        self.args = []

    async def render_post(self, request):
        self.args.append(request.payload.decode())
        return Message(code=Code.CHANGED)


async def next_event(events, want, timeout=5):
    for _ in range(int(timeout * 20)):
        for i, (topic, msg) in enumerate(events):
            if msg.get("msgType") == want:
                events.pop(i)
                return topic, msg
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {want} event: {events}")


async def main(lwm2m, mqtt_addr):
    host, port = lwm2m.rsplit(":", 1)
    manufacturer, battery, reboot = Text("aiocoap"), Text("77"), Exec()
    site = resource.Site()
    site.add_resource(["3", "0", "0"], manufacturer)
    site.add_resource(["3", "0", "9"], battery)
    site.add_resource(["3", "0", "4"], reboot)
    ctx = await aiocoap.Context.create_server_context(site, bind=("127.0.0.1", 0))

    events = []
    mh, mp = mqtt_addr.rsplit(":", 1)
    app = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="aiocoap-app")
    app.on_message = lambda c, u, m: events.append((m.topic, json.loads(m.payload)))
    app.connect(mh, int(mp))
    app.loop_start()
    app.subscribe(f"lwm2m/{EP}/up/#", qos=1)
    await asyncio.sleep(0.5)

    reg = Message(code=Code.POST, uri=f"coap://{host}:{port}/rd?ep={EP}&lt=60&lwm2m=1.0&b=U",
                  payload=b"</3/0>", content_format=40)
    r = await asyncio.wait_for(ctx.request(reg).response, 5)
    assert r.code == Code.CREATED, r.code
    assert list(r.opt.location_path) == ["rd", EP], r.opt.location_path
    _, ev = await next_event(events, "register")
    assert ev["data"]["objectList"] == ["/3/0"], ev

    def command(msg):
        app.publish(f"lwm2m/{EP}/dn/dm", json.dumps(msg), qos=1).wait_for_publish(5)

    command({"reqID": 1, "msgType": "read", "data": {"path": "/3/0/0"}})
    _, ev = await next_event(events, "read")
    assert ev == {"reqID": 1, "msgType": "read", "data": {
        "reqPath": "/3/0/0", "code": "2.05", "codeMsg": "content",
        "content": [{"path": "/3/0/0", "value": "aiocoap"}]}}, ev

    command({"reqID": 2, "msgType": "write", "data": {"path": "/3/0/0", "type": "String",
                                                    "value": "x", "format": "text"}})
    _, ev = await next_event(events, "write")
    assert ev["data"]["code"] == "2.04", ev
    assert manufacturer.value == "x", manufacturer.value

    command({"reqID": 3, "msgType": "execute", "data": {"path": "/3/0/4", "args": "5"}})
    _, ev = await next_event(events, "execute")
    assert ev["data"]["codeMsg"] == "changed" and reboot.args == ["5"], (ev, reboot.args)

    command({"reqID": 4, "msgType": "observe", "data": {"path": "/3/0/9"}})
    _, ev = await next_event(events, "observe")
    assert ev["data"]["content"] == [{"path": "/3/0/9", "value": 77}], ev
    battery.set("76")
    topic, ev = await next_event(events, "notify")
    assert topic == f"lwm2m/{EP}/up/notify", topic
    assert ev["reqID"] == 4 and ev["data"]["content"] == [{"path": "/3/0/9", "value": 76}], ev

    dereg = Message(code=Code.DELETE, uri=f"coap://{host}:{port}/rd/{EP}")
    r = await asyncio.wait_for(ctx.request(dereg).response, 5)
    assert r.code == Code.DELETED, r.code
    app.loop_stop()
    await ctx.shutdown()
    print("OK lwm2m")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
