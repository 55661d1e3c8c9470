// Drives the Switchyard dashboard in headless Chromium (Debian's /usr/bin/chromium through
// playwright-core; no browser download). Prints "OK <step>" per step; exits non-zero on the
// first failure. Inputs (env): SY_DASHBOARD_URL, SY_KICK_CLIENT (an MQTT client the Rust test
// keeps connected), SY_OTHER_CLIENTS ("id=Protocol,..." of its MQTT-SN / CoAP clients), SY_WS_TOPIC (the Rust test's TCP subscriber listens there), SY_TRACE_CLIENT (an MQTT client that keeps publishing), SY_SHOT_DIR.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const base = process.env.SY_DASHBOARD_URL;
const kickId = process.env.SY_KICK_CLIENT;
const wsTopic = process.env.SY_WS_TOPIC;
const shots = process.env.SY_SHOT_DIR || "target/screenshots";
const newPassword = "browser-pass-1";
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
let failed = false;
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
page.setDefaultTimeout(10000);
page.on("dialog", (d) => d.accept());
page.on("pageerror", (e) => { console.log("page error: " + e.message); failed = true; });
const ok = (step) => console.log("OK " + step);
const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });

try {
  await page.goto(base + "/");
  await page.waitForSelector("#login-form:not(.hidden)");
  await shot("dashboard-login");
  await page.fill("#login-username", "admin");
  await page.fill("#login-password", "public");
  await page.click("#login-submit");
  await page.waitForSelector("#pwd-form:not(.hidden)");
  ok("login");
  await page.fill("#new-password", newPassword);
  await page.fill("#confirm-password", newPassword);
  await page.click("#pwd-submit");
  await page.waitForSelector("#app:not(.hidden)");
  await page.waitForSelector("#conn-mqtt");
  ok("change_password");

  await page.click("nav a[data-route='/clients']");
  await page.waitForURL(base + "/clients");
  const row = `#clients-table tr[data-clientid="${kickId}"]`;
  await page.waitForSelector(row);
  const proto = await page.textContent(`${row} td:nth-child(2)`);
  if (proto.trim() !== "MQTT") throw new Error("protocol column shows " + proto);
  for (const pair of (process.env.SY_OTHER_CLIENTS || "").split(",").filter(Boolean)) {
    const [id, protocol] = pair.split("=");
    const other = `#clients-table tr[data-clientid="${id}"]`;
    await page.waitForSelector(other);
    const shown = (await page.textContent(`${other} td:nth-child(2)`)).trim();
    if (shown !== protocol) throw new Error(`${id}: protocol column shows ${shown}, not ${protocol}`);
  }
  await shot("dashboard-clients");
  ok("client_listed");
  await page.click(`${row} button.kick`);
  await page.waitForSelector(`${row} button.kick`, { state: "detached" });
  ok("kick");

  await page.click("nav a[data-route='/websocket']");
  await page.waitForSelector("#ws-connect");
  await page.selectOption("#ws-version", "5");
  await page.click("#ws-connect");
  await page.waitForSelector("#ws-state.connected");
  await page.fill("#ws-sub-topic", wsTopic.replace(/[^/]+$/, "#"));
  await page.selectOption("#ws-sub-qos", "1");
  await page.click("#ws-subscribe");
  await page.waitForSelector("#ws-subs tr");
  await page.fill("#ws-pub-topic", wsTopic);
  await page.fill("#ws-pub-payload", "from-the-browser");
  await page.selectOption("#ws-pub-qos", "1");
  await page.click("#ws-publish");
  await page.waitForFunction(() => document.querySelector("#ws-messages").textContent.includes("from-the-browser"));
  await shot("dashboard-websocket");
  // The same with MQTT 3.1.1.
  await page.click("#ws-disconnect");
  await page.waitForSelector("#ws-state.disconnected");
  await page.selectOption("#ws-version", "4");
  await page.click("#ws-connect");
  await page.waitForSelector("#ws-state.connected");
  await page.click("#ws-subscribe");
  await page.waitForSelector("#ws-subs tr");
  await page.fill("#ws-pub-payload", "from-the-browser-311");
  await page.selectOption("#ws-pub-qos", "2");
  await page.click("#ws-publish");
  await page.waitForFunction(() => document.querySelector("#ws-messages").textContent.includes("from-the-browser-311"));
  ok("websocket_roundtrip");

  await page.click("nav a[data-route='/admins']");
  await page.waitForSelector("#users-table tr td");
  await page.fill("#new-key", "browser-key");
  await page.click("#add-key");
  await page.waitForFunction(() => document.querySelector("#key-secret").textContent.includes("Secret: "));
  await page.waitForSelector("#keys-table tr td");
  ok("admins");

  const tableHas = (text) => page.waitForFunction((t) => document.querySelector("#list-table tbody").textContent.includes(t), text);
  await page.click("nav a[data-route='/subscriptions']");
  await tableHas("browser-tcp-sub");
  await page.click("nav a[data-route='/topics']");
  await tableHas("browser/ws/#");
  await page.click("nav a[data-route='/retained']");
  await tableHas("browser/retained");
  await page.click("#list-table button.view-ret");
  await page.waitForFunction(() => document.querySelector("#ret-view").textContent.includes("kept"));
  await shot("dashboard-retained");
  ok("lists");

  await page.click("nav a[data-route='/']");
  await page.waitForFunction(() => document.querySelector("#node-version") && document.querySelector("#node-version").textContent !== "–");
  await page.waitForTimeout(9000); // a few samples for the rate chart
  await shot("dashboard-overview");
  ok("overview");

  // A log trace of the client the Rust test keeps publishing: its lines show in the viewer.
  await page.click("nav a[data-route='/trace']");
  await page.waitForSelector("#trace-form");
  await page.fill("#trace-name", "browser-trace");
  await page.selectOption("#trace-type", "clientid");
  await page.fill("#trace-match", process.env.SY_TRACE_CLIENT);
  await page.click("#trace-form button[type=submit]");
  const traceRow = "#trace-table tr[data-trace='browser-trace']";
  await page.waitForSelector(`${traceRow} .badge.running`);
  await page.click(`${traceRow} button.trace-view`);
  await page.waitForFunction(() => document.querySelector("#trace-view").textContent.includes("message published"));
  await shot("dashboard-trace");
  await page.click(`${traceRow} button.trace-stop`);
  await page.waitForSelector(`${traceRow} .badge.stopped`);
  ok("trace");

  // Authentication: add an HTTP authenticator from its template, move it first, disable it,
  // test a login through the whole chain, delete it.
  await page.click("nav a[data-route='/authentication']");
  await page.waitForSelector("#authn-table tr[data-id='password_based:built_in_database']");
  await page.selectOption("#authn-tpl", "http");
  await page.click("#authn-add");
  await page.waitForSelector("#authn-table tbody tr:nth-child(2)[data-id='password_based:http']");
  await page.click("#authn-table tr[data-id='password_based:http'] button.authn-up");
  await page.waitForSelector("#authn-table tbody tr:nth-child(1)[data-id='password_based:http']");
  await page.click("#authn-table tr[data-id='password_based:http'] button.authn-toggle");
  await page.waitForSelector("#authn-table tr[data-id='password_based:http'][data-enable='false']");
  await page.fill("#authn-test-user", "nobody");
  await page.click("#authn-test");
  await page.waitForSelector("#authn-test-result.connected");
  await shot("dashboard-authentication");
  await page.click("#authn-table tr[data-id='password_based:http'] button.authn-del");
  await page.waitForSelector("#authn-table tr[data-id='password_based:http']", { state: "detached" });
  // Authorization: add an HTTP source (put first), move it after the file, change the
  // settings, clean the cache, delete it.
  await page.click("nav a[data-route='/authorization']");
  await page.waitForSelector("#authz-table tr[data-type='file']");
  await page.selectOption("#authz-tpl", "http");
  await page.click("#authz-add");
  await page.waitForSelector("#authz-table tbody tr:nth-child(1)[data-type='http']");
  await page.click("#authz-table tr[data-type='http'] button.authz-down");
  await page.waitForSelector("#authz-table tbody tr:nth-child(2)[data-type='http']");
  await page.fill("#authz-cache-max", "64");
  await page.click("#authz-save");
  await page.waitForFunction(() => document.querySelector("#authz-settings-msg").textContent === "Saved");
  await page.click("#authz-clean");
  await page.waitForFunction(() => document.querySelector("#authz-settings-msg").textContent === "Cache cleaned");
  await shot("dashboard-authorization");
  await page.click("#authz-table tr[data-type='http'] button.authz-del");
  await page.waitForSelector("#authz-table tr[data-type='http']", { state: "detached" });
  ok("security");

  // Rules: create one from the editor, test its SQL (match and no match), add a webhook,
  // disable the rule, delete both.
  await page.click("nav a[data-route='/rules']");
  await page.waitForSelector("#rules-table tbody tr");
  await page.fill("#rule-id", "browser_rule");
  await page.click("#rule-save");
  await page.waitForSelector("#rules-table tr[data-id='browser_rule']");
  await page.click("#rule-test");
  await page.waitForFunction(() => document.querySelector("#rule-test-output").textContent.includes('"t": 35'));
  await page.fill("#rule-context", '{"topic": "other/1", "payload": "{}"}');
  await page.click("#rule-test");
  await page.waitForFunction(() => document.querySelector("#rule-test-output").textContent.includes("412"));
  await page.fill("#hook-name", "browser_hook");
  await page.fill("#hook-url", "http://127.0.0.1:9/hook");
  await page.click("#hook-add");
  await page.waitForSelector("#hooks-table tr[data-id='http:browser_hook']");
  await page.click("#rules-table tr[data-id='browser_rule'] button.rule-toggle");
  await page.waitForSelector("#rules-table tr[data-id='browser_rule'] .badge.stopped");
  await shot("dashboard-rules");
  await page.click("#rules-table tr[data-id='browser_rule'] button.rule-del");
  await page.waitForSelector("#rules-table tr[data-id='browser_rule']", { state: "detached" });
  await page.click("#hooks-table tr[data-id='http:browser_hook'] button.hook-del");
  await page.waitForSelector("#hooks-table tr[data-id='http:browser_hook']", { state: "detached" });
  ok("rules");

  await page.click("nav a[data-route='/gateways']");
  await page.waitForSelector("#gateways-table tr[data-gateway='lwm2m']");
  await shot("dashboard-gateways");
  ok("gateways");

  await page.click("#lang-toggle");
  await page.waitForFunction(() => document.querySelector("nav a[data-route='/clients']").textContent === "客户端");
  const nav = await page.textContent("nav");
  for (const word of ["概览", "订阅", "主题", "保留消息", "网关", "日志追踪", "管理员", "认证", "授权", "规则"]) {
    if (!nav.includes(word)) throw new Error("navigation lacks " + word + ": " + nav);
  }
  await page.waitForFunction(() => document.querySelector("#gateways-table") && document.querySelector("#gateways-table").textContent.includes("运行中"));
  await shot("dashboard-zh");
  ok("chinese");
} catch (e) {
  console.log("FAILED: " + (e && e.stack || e));
  await shot("dashboard-failure").catch(() => {});
  failed = true;
}
await browser.close();
process.exit(failed ? 1 : 0);
