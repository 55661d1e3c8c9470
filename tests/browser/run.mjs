// MQTT.js in headless Chromium against Switchyard's MQTT-over-WebSocket listener.
//
//   node tests/browser/run.mjs --ws ws://127.0.0.1:PORT/mqtt --tcp 127.0.0.1:PORT
//
// Serves page.html and MQTT.js's browser bundle from a local HTTP server on 127.0.0.1:0,
// launches Debian's Chromium (/usr/bin/chromium, or $CHROMIUM) through playwright-core — no
// browser download; Playwright gives it a fresh temporary profile — and, for MQTT 3.1.1
// (protocolVersion 4) and MQTT 5, runs in the page: subscribe/publish/receive at QoS 0, 1 and 2,
// retained messages, a 64 KiB payload, messages to and from a TCP client (MQTT.js in Node over
// mqtt://), and the will of a tab closed without DISCONNECT. Prints "OK <case>" per case and
// "ALL OK" at the end; exits non-zero with "FAIL <case>: <why>" on the first failure. Every
// wait is bounded, and a watchdog ends the run after 90 s.
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import mqtt from 'mqtt';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const WAIT = 5000;

function arg(name) {
  const i = process.argv.indexOf(name);
  if (i < 0 || i + 1 >= process.argv.length) {
    console.error(`usage: node run.mjs --ws ws://HOST:PORT/mqtt --tcp HOST:PORT (missing ${name})`);
    process.exit(64);
  }
  return process.argv[i + 1];
}

const wsUrl = arg('--ws');
const tcpUrl = `mqtt://${arg('--tcp')}`;

const watchdog = setTimeout(() => {
  console.log('FAIL watchdog: run exceeded 90 s');
  process.exit(3);
}, 90_000);

// --- the static server -----------------------------------------------------------------------
async function serve() {
  const bundle = await readFile(join(dirname(require.resolve('mqtt/package.json')), 'dist', 'mqtt.min.js'));
  const page = await readFile(join(here, 'page.html'));
  const server = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    if (path === '/' || path === '/page.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page);
    } else if (path === '/mqtt.min.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(bundle);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

// --- a TCP client in Node ---------------------------------------------------------------------
function tcpClient(clientId) {
  const c = mqtt.connect(tcpUrl, { clientId, protocolVersion: 5, reconnectPeriod: 0, connectTimeout: WAIT });
  const inbox = [];
  c.on('message', (topic, payload, packet) => inbox.push({ topic, payload, qos: packet.qos, retain: packet.retain }));
  const ready = new Promise((resolve, reject) => {
    c.once('connect', resolve);
    c.once('error', reject);
  });
  return {
    client: c,
    ready: timed(ready, `${clientId} connect`),
    subscribe: (filter, qos) => timed(c.subscribeAsync(filter, { qos }), `${clientId} subscribe`),
    publish: (topic, payload, opts) => timed(c.publishAsync(topic, payload, opts), `${clientId} publish`),
    async next(pred = () => true, ms = WAIT) {
      const deadline = Date.now() + ms;
      for (;;) {
        const i = inbox.findIndex(pred);
        if (i >= 0) return inbox.splice(i, 1)[0];
        if (Date.now() > deadline) throw new Error(`${clientId}: no matching message within ${ms} ms`);
        await sleep(10);
      }
    },
    inbox,
    end: () => timed(c.endAsync(), `${clientId} end`),
  };
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function timed(promise, what, ms = WAIT) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

function check(cond, why) {
  if (!cond) throw new Error(why);
}

// --- cases, each run for MQTT 3.1.1 (4) and MQTT 5 ----------------------------------------------

async function caseQos(page, v) {
  await page.evaluate(async ([url, v]) => {
    const h = window.harness;
    const name = `main${v}`;
    await h.connect(name, url, { clientId: `browser-v${v}`, protocolVersion: v });
    const granted = await h.subscribe(name, `b${v}/q/#`, 2);
    if (granted[0] !== 2) throw new Error(`granted ${granted}`);
    for (const qos of [0, 1, 2]) {
      const opts = { qos };
      if (v === 5) opts.properties = { userProperties: { k: 'v' }, contentType: 'text/plain' };
      await h.publish(name, `b${v}/q/${qos}`, `qos ${qos}`, opts);
    }
    for (const qos of [0, 1, 2]) {
      const m = await h.next(name, (m) => m.topic === `b${v}/q/${qos}`);
      if (m.qos !== qos || h.text(m) !== `qos ${qos}`) throw new Error(`got qos ${m.qos} ${h.text(m)}`);
      if (v === 5) {
        const p = m.properties;
        if (p.contentType !== 'text/plain' || !p.userProperties || p.userProperties.k !== 'v') {
          throw new Error(`properties lost: ${JSON.stringify(p)}`);
        }
      }
    }
    await h.quiet(name, 300);
  }, [wsUrl, v]);
}

async function caseRetained(page, v) {
  await page.evaluate(async ([url, v]) => {
    const h = window.harness;
    await h.publish(`main${v}`, `b${v}/ret/x`, 'kept', { qos: 1, retain: true });
    const late = `late${v}`;
    await h.connect(late, url, { clientId: `browser-late-v${v}`, protocolVersion: v });
    await h.subscribe(late, `b${v}/ret/#`, 1);
    const m = await h.next(late);
    if (m.topic !== `b${v}/ret/x` || h.text(m) !== 'kept' || !m.retain) {
      throw new Error(`retained: ${m.topic} ${h.text(m)} retain=${m.retain}`);
    }
    await h.end(late);
  }, [wsUrl, v]);
}

async function caseBigPayload(page, v, tcp) {
  await tcp.subscribe(`b${v}/q/big`, 1);
  await page.evaluate(async ([v]) => {
    const h = window.harness;
    const n = 64 * 1024;
    await h.publish(`main${v}`, `b${v}/q/big`, h.pattern(n), { qos: 1 });
    const m = await h.next(`main${v}`, (m) => m.topic === `b${v}/q/big`);
    if (!h.samePattern(m.payload, n)) throw new Error(`64 KiB came back as ${m.payload.length} bytes`);
  }, [v]);
  const m = await tcp.next((m) => m.topic === `b${v}/q/big`);
  check(m.payload.length === 64 * 1024 && m.payload.every((b, i) => b === i % 251), 'TCP copy of 64 KiB differs');
}

async function caseTcp(page, v, tcp) {
  await tcp.subscribe(`tcp/from-b${v}`, 2);
  await tcp.publish(`b${v}/q/tcp`, 'from tcp', { qos: 1 });
  await page.evaluate(async ([v]) => {
    const h = window.harness;
    const m = await h.next(`main${v}`, (m) => m.topic === `b${v}/q/tcp`);
    if (h.text(m) !== 'from tcp' || m.qos !== 1) throw new Error(`from TCP: ${h.text(m)} qos ${m.qos}`);
    await h.publish(`main${v}`, `tcp/from-b${v}`, 'from browser', { qos: 2 });
  }, [v]);
  const m = await tcp.next((m) => m.topic === `tcp/from-b${v}`);
  check(m.payload.toString() === 'from browser' && m.qos === 2, `TCP got ${m.payload} qos ${m.qos}`);
}

// A tab (v4: page.close()) or a whole browser context (v5: context.close()) goes away without
// MQTT DISCONNECT; the broker publishes the will to the TCP subscriber.
async function caseWill(browser, v, tcp) {
  await tcp.subscribe(`will/b${v}`, 1);
  const context = await browser.newContext();
  const tab = await context.newPage();
  await tab.goto(pageUrl);
  await tab.waitForFunction(() => window.harnessReady === true, null, { timeout: WAIT });
  await tab.evaluate(async ([url, v]) => {
    await window.harness.connect('dying', url, {
      clientId: `browser-will-v${v}`,
      protocolVersion: v,
      will: { topic: `will/b${v}`, payload: 'tab closed', qos: 1, retain: false },
    });
  }, [wsUrl, v]);
  await sleep(300);
  check(!tcp.inbox.some((m) => m.topic === `will/b${v}`), 'will published while the tab was open');
  if (v === 4) {
    await tab.close();
    await context.close();
  } else {
    await context.close();
  }
  const m = await tcp.next((m) => m.topic === `will/b${v}`);
  check(m.payload.toString() === 'tab closed' && m.qos === 1, `will: ${m.payload} qos ${m.qos}`);
}

let pageUrl;

async function main() {
  const server = await serve();
  pageUrl = `http://127.0.0.1:${server.address().port}/page.html`;
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    timeout: 30_000,
  });
  console.log(`browser ${browser.version()}`);
  const tcp = tcpClient('node-tcp');
  let current = 'setup';
  try {
    await tcp.ready;
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
    await page.goto(pageUrl);
    await page.waitForFunction(() => window.harnessReady === true, null, { timeout: WAIT });
    for (const v of [4, 5]) {
      for (const [name, run] of [
        ['qos', () => caseQos(page, v)],
        ['retained', () => caseRetained(page, v)],
        ['payload_64k', () => caseBigPayload(page, v, tcp)],
        ['tcp_exchange', () => caseTcp(page, v, tcp)],
        ['will_on_closed_tab', () => caseWill(browser, v, tcp)],
      ]) {
        current = `${name}_v${v}`;
        const started = Date.now();
        await run();
        console.log(`OK ${current} (${Date.now() - started} ms)`);
      }
    }
    current = 'teardown';
    await context.close();
    console.log('ALL OK');
  } catch (e) {
    console.log(`FAIL ${current}: ${e && e.message ? e.message : e}`);
    process.exitCode = 1;
  } finally {
    await tcp.end().catch(() => {});
    await browser.close().catch(() => {});
    server.close();
    clearTimeout(watchdog);
  }
}

main().catch((e) => {
  console.log(`FAIL setup: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
