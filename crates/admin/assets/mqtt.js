// A tiny MQTT 3.1.1 / 5.0 client over WebSocket for the dashboard's WebSocket tool:
// CONNECT, SUBSCRIBE, UNSUBSCRIBE, PUBLISH (QoS 0/1/2 both ways), PINGREQ, DISCONNECT.
"use strict";
(function () {
  const enc = new TextEncoder(), dec = new TextDecoder();
  function varint(n) { const out = []; do { let b = n % 128; n = Math.floor(n / 128); if (n > 0) b |= 128; out.push(b); } while (n > 0); return out; }
  function str(s) { const b = enc.encode(s); return [b.length >> 8, b.length & 255, ...b]; }
  function u16(n) { return [n >> 8, n & 255]; }
  function packet(type, flags, body) { return new Uint8Array([(type << 4) | flags, ...varint(body.length), ...body]); }

  class MqttWs {
    constructor(url, opts) {
      this.url = url; this.v5 = opts.version === 5; this.opts = opts; this.nextId = 1;
      this.buf = new Uint8Array(0); this.pending = {}; this.onmessage = () => {}; this.onclose = () => {}; this.onconnect = () => {};
    }
    id() { const i = this.nextId; this.nextId = this.nextId % 65535 + 1; return i; }
    connect() {
      this.ws = new WebSocket(this.url, "mqtt"); this.ws.binaryType = "arraybuffer";
      this.ws.onopen = () => {
        const o = this.opts; let flags = 0x02; const payload = [...str(o.clientId)];
        if (o.username) { flags |= 0x80; payload.push(...str(o.username)); }
        if (o.password) { flags |= 0x40; payload.push(...str(o.password)); }
        const body = [...str("MQTT"), this.v5 ? 5 : 4, flags, ...u16(o.keepalive || 60)];
        if (this.v5) body.push(0);
        this.send(packet(1, 0, [...body, ...payload]));
      };
      this.ws.onmessage = (e) => this.feed(new Uint8Array(e.data));
      this.ws.onclose = () => { clearInterval(this.ping); this.onclose(); };
      this.ws.onerror = () => {};
    }
    send(p) { if (this.ws && this.ws.readyState === 1) this.ws.send(p); }
    feed(chunk) {
      const b = new Uint8Array(this.buf.length + chunk.length); b.set(this.buf); b.set(chunk, this.buf.length); this.buf = b;
      for (;;) {
        let len = 0, mul = 1, i = 1;
        for (;; i++) { if (i >= this.buf.length) return; const x = this.buf[i]; len += (x & 127) * mul; mul *= 128; if (!(x & 128)) break; if (i > 4) { this.ws.close(); return; } }
        const start = i + 1; if (this.buf.length < start + len) return;
        this.handle(this.buf[0], this.buf.slice(start, start + len)); this.buf = this.buf.slice(start + len);
      }
    }
    handle(h, body) {
      const type = h >> 4;
      if (type === 2) { // CONNACK
        const rc = body[1];
        if (rc === 0) { this.ping = setInterval(() => this.send(new Uint8Array([0xc0, 0])), (this.opts.keepalive || 60) * 500); }
        this.onconnect(rc);
      } else if (type === 3) { // PUBLISH
        const qos = (h >> 1) & 3, retain = !!(h & 1); let p = 0;
        const tl = (body[0] << 8) | body[1]; const topic = dec.decode(body.slice(2, 2 + tl)); p = 2 + tl;
        let pid = 0; if (qos > 0) { pid = (body[p] << 8) | body[p + 1]; p += 2; }
        if (this.v5) { let plen = 0, mul = 1; for (;;) { const x = body[p++]; plen += (x & 127) * mul; mul *= 128; if (!(x & 128)) break; } p += plen; }
        const payload = dec.decode(body.slice(p));
        if (qos === 1) this.send(packet(4, 0, u16(pid)));
        if (qos === 2) this.send(packet(5, 0, u16(pid)));
        this.onmessage({ topic, payload, qos, retain });
      } else if (type === 5) { // PUBREC → PUBREL
        this.send(packet(6, 2, [body[0], body[1]]));
      } else if (type === 6) { // PUBREL → PUBCOMP
        this.send(packet(7, 0, [body[0], body[1]]));
      } else if (type === 9 || type === 11) { // SUBACK / UNSUBACK
        const pid = (body[0] << 8) | body[1]; const cb = this.pending[pid]; delete this.pending[pid];
        if (cb) cb(Array.from(body.slice(this.v5 ? 3 : 2)));
      }
    }
    subscribe(topic, qos, cb) {
      const pid = this.id(); this.pending[pid] = cb;
      const body = [...u16(pid)]; if (this.v5) body.push(0);
      this.send(packet(8, 2, [...body, ...str(topic), qos]));
    }
    unsubscribe(topic, cb) {
      const pid = this.id(); this.pending[pid] = cb;
      const body = [...u16(pid)]; if (this.v5) body.push(0);
      this.send(packet(10, 2, [...body, ...str(topic)]));
    }
    publish(topic, payload, qos, retain) {
      const body = [...str(topic)]; if (qos > 0) body.push(...u16(this.id())); if (this.v5) body.push(0);
      body.push(...enc.encode(payload));
      this.send(packet(3, (qos << 1) | (retain ? 1 : 0), body));
    }
    disconnect() { this.send(new Uint8Array([0xe0, 0])); if (this.ws) this.ws.close(); }
  }
  window.MqttWs = MqttWs;
})();
