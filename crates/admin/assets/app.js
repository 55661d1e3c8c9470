// The dashboard: a small client-side router over the /api/v5 REST API. Every page has its own
// URL; live numbers are polled (the timer of a page stops when another page opens).
"use strict";
(function () {
  const $ = (s, el) => (el || document).querySelector(s);
  const esc = (v) => String(v === null || v === undefined ? "" : v).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const t = (k) => window.I18N.t(k);
  let timers = [];
  const every = (ms, fn) => { fn(); timers.push(setInterval(fn, ms)); };

  async function api(method, path, body) {
    const headers = { "Authorization": "Bearer " + (localStorage.getItem("sy_token") || "") };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (r.status === 401) { showLogin(); throw new Error(t("sessionExpired")); }
    const text = await r.text(); let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
    if (!r.ok) throw new Error((data && data.message) || r.statusText);
    return data;
  }

  // ---- login and forced password change ----
  function showLogin() {
    $("#app").classList.add("hidden"); $("#login-view").classList.remove("hidden");
    $("#login-form").classList.remove("hidden"); $("#pwd-form").classList.add("hidden");
  }
  function showPwdChange() {
    $("#app").classList.add("hidden"); $("#login-view").classList.remove("hidden");
    $("#login-form").classList.add("hidden"); $("#pwd-form").classList.remove("hidden");
  }
  $("#login-form").addEventListener("submit", async (e) => {
    e.preventDefault(); $("#login-error").textContent = "";
    const username = $("#login-username").value, password = $("#login-password").value;
    try {
      const r = await fetch("/api/v5/login", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ username, password }) });
      const d = await r.json();
      if (!r.ok) { $("#login-error").textContent = r.status === 429 ? t("tooManyLogins") : t("badLogin"); return; }
      localStorage.setItem("sy_token", d.token); localStorage.setItem("sy_user", username);
      sessionStorage.setItem("sy_old", password);
      if (d.must_change_password) showPwdChange(); else start();
    } catch (err) { $("#login-error").textContent = String(err.message || err); }
  });
  $("#pwd-form").addEventListener("submit", async (e) => {
    e.preventDefault(); $("#pwd-error").textContent = "";
    const n = $("#new-password").value;
    if (n !== $("#confirm-password").value) { $("#pwd-error").textContent = t("pwdMismatch"); return; }
    try {
      await api("POST", "/api/v5/users/" + encodeURIComponent(localStorage.getItem("sy_user")) + "/change_pwd", { old_pwd: sessionStorage.getItem("sy_old") || "", new_pwd: n });
      sessionStorage.removeItem("sy_old"); start();
    } catch (err) { $("#pwd-error").textContent = err.message; }
  });
  $("#logout").addEventListener("click", async (e) => {
    e.preventDefault(); try { await api("POST", "/api/v5/logout"); } catch (_) { /* already gone */ }
    localStorage.removeItem("sy_token"); showLogin();
  });
  document.querySelectorAll(".lang-toggle").forEach((a) => a.addEventListener("click", (e) => {
    e.preventDefault(); window.I18N.set(window.I18N.lang === "zh" ? "en" : "zh"); window.I18N.apply(); if (!$("#app").classList.contains("hidden")) route();
  }));

  // ---- router ----
  function go(path) { history.pushState({}, "", path); route(); }
  window.addEventListener("popstate", route);
  document.addEventListener("click", (e) => {
    const a = e.target.closest("a[href^='/']");
    if (a && !a.hasAttribute("download")) { e.preventDefault(); go(a.getAttribute("href")); }
  });
  const pages = {
    "/": overview, "/clients": clients, "/subscriptions": subscriptions, "/topics": topics,
    "/retained": retained, "/gateways": gateways, "/websocket": websocket, "/admins": admins,
    "/banned": banned, "/trace": traces,
  };
  // Pages of other files (security.js): each gets the helpers it needs.
  Object.entries(window.SY_PAGES || {}).forEach(([p, page]) => { pages[p] = (main) => page(main, { api, esc, t, $ }); });
  function route() {
    timers.forEach(clearInterval); timers = [];
    const path = location.pathname;
    document.querySelectorAll("nav a[data-route]").forEach((a) => {
      const r = a.dataset.route; a.classList.toggle("active", r === "/" ? path === "/" : path.startsWith(r));
    });
    const main = $("#main");
    if (path.startsWith("/clients/")) return clientDetail(main, decodeURIComponent(path.slice(9)));
    (pages[path] || overview)(main);
  }
  async function start() {
    $("#login-view").classList.add("hidden"); $("#app").classList.remove("hidden");
    window.I18N.apply(); route();
  }

  // ---- pages ----
  // The protocols this binary carries, from its gateway table (name, namespace, proto_name,
  // display_name, gateway): asked once, so a new protocol needs no change here.
  let protocolList = null;
  function protocols() {
    if (!protocolList) protocolList = api("GET", "/api/v5/protocols").catch((e) => { protocolList = null; throw e; });
    return protocolList;
  }
  function fmtUptime(ms) {
    let s = Math.floor(ms / 1000); const d = Math.floor(s / 86400); s %= 86400;
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60); s %= 60;
    return (d ? d + t("days") + " " : "") + h + t("hours") + " " + m + t("minutes") + " " + s + t("seconds");
  }
  function stat(id, label, small) { return `<div class="card stat"><div class="label">${esc(label)}</div><div class="value${small ? " small" : ""}" id="${id}">–</div></div>`; }

  function overview(main) {
    main.innerHTML = `<h1>${t("navOverview")}</h1>
      <div class="cards"><div id="proto-cards" style="display:contents"></div>
        ${stat("stat-sessions", t("sessions"))}${stat("stat-subs", t("navSubscriptions"))}${stat("stat-topics", t("navTopics"))}${stat("stat-retained", t("navRetained"))}</div>
      <div class="card"><h2>${t("messageRate")}</h2>
        <div class="legend"><span><i style="background:#0f9d74"></i>${t("received")}</span><span><i style="background:#3b6fd8"></i>${t("sent")}</span><span><i style="background:#d64545"></i>${t("dropped")}</span></div>
        <canvas id="rate-chart"></canvas></div>
      <div class="cards" style="margin-top:16px">${stat("node-name", t("node"), true)}${stat("node-version", t("version"), true)}${stat("node-uptime", t("uptime"), true)}</div>`;
    const chart = new window.LineChart($("#rate-chart"), [{ color: "#0f9d74" }, { color: "#3b6fd8" }, { color: "#d64545" }], 60);
    protocols().then((ps) => {
      const el = $("#proto-cards"); if (el) el.innerHTML = ps.map((p) => stat("conn-" + p.namespace, p.display_name + " " + t("connections"))).join("");
    }).catch(() => { /* the cards stay empty; the poll below retries the list */ });
    let last = null;
    every(2000, async () => {
      try {
        const [s, m, n, ps] = await Promise.all([api("GET", "/api/v5/stats?aggregate=true"), api("GET", "/api/v5/metrics?aggregate=true"), api("GET", "/api/v5/nodes"), protocols()]);
        if (!$("#rate-chart")) return;
        ps.forEach((p) => { const el = $("#conn-" + p.namespace); if (el) el.textContent = s[p.namespace + ".connections.count"] || 0; });
        $("#stat-sessions").textContent = s["sessions.count"]; $("#stat-subs").textContent = s["subscriptions.count"];
        $("#stat-topics").textContent = s["topics.count"]; $("#stat-retained").textContent = s["retained.count"];
        $("#node-name").textContent = n[0].node; $("#node-version").textContent = n[0].version; $("#node-uptime").textContent = fmtUptime(n[0].uptime);
        const now = Date.now(), cur = [m["messages.received"], m["messages.sent"], m["messages.dropped"]];
        if (last) { const dt = Math.max(0.001, (now - last.at) / 1000); chart.push(cur.map((v, i) => Math.max(0, (v - last.v[i]) / dt))); }
        last = { at: now, v: cur };
      } catch (e) { /* shown on next success */ }
    });
  }

  function pager(id, meta, reload) {
    const el = $("#" + id); if (!el) return;
    el.innerHTML = `<button class="secondary" ${meta.page <= 1 ? "disabled" : ""} data-p="${meta.page - 1}">‹</button>
      <span>${t("page")} ${meta.page} · ${t("total")} ${meta.count}</span>
      <button class="secondary" ${meta.hasnext ? "" : "disabled"} data-p="${meta.page + 1}">›</button>`;
    el.querySelectorAll("button").forEach((b) => b.addEventListener("click", () => reload(Number(b.dataset.p))));
  }

  function clients(main) {
    const params = new URLSearchParams(location.search);
    main.innerHTML = `<h1>${t("navClients")}</h1>
      <div class="row"><label>${t("searchClientId")}<input id="client-search" value="${esc(params.get("like_clientid") || "")}"></label>
      <label>${t("protocol")}<select id="client-proto"><option value="">${t("all")}</option></select></label>
      <label>${t("state")}<select id="client-state"><option value="">${t("all")}</option><option value="connected">${t("connected")}</option><option value="disconnected">${t("disconnected")}</option></select></label></div>
      <table id="clients-table"><thead><tr><th>${t("clientId")}</th><th>${t("protocol")}</th><th>${t("username")}</th><th>${t("ipAddress")}</th><th>${t("state")}</th><th>${t("navSubscriptions")}</th><th>${t("connectedAt")}</th><th></th></tr></thead><tbody></tbody></table>
      <div class="pager" id="clients-pager"></div><p class="error" id="clients-error"></p>`;
    protocols().then((ps) => {
      const sel = $("#client-proto"); if (!sel) return;
      sel.insertAdjacentHTML("beforeend", ps.map((p) => `<option value="${esc(p.proto_name)}" ${params.get("proto_name") === p.proto_name ? "selected" : ""}>${esc(p.display_name)}</option>`).join(""));
      if (params.get("proto_name")) load(1);
    }).catch(() => { /* filter by protocol unavailable until the next visit */ });
    let page = 1;
    const load = async (p) => {
      if (p) page = p;
      const q = new URLSearchParams({ page, limit: 50 });
      const s = $("#client-search") && $("#client-search").value.trim(); if (s) q.set("like_clientid", s);
      const pr = $("#client-proto") && $("#client-proto").value; if (pr) q.set("proto_name", pr);
      const st = $("#client-state") && $("#client-state").value; if (st) q.set("conn_state", st);
      try {
        const d = await api("GET", "/api/v5/clients?" + q); const tb = $("#clients-table tbody"); if (!tb) return;
        tb.innerHTML = d.data.map((c) => `<tr data-clientid="${esc(c.clientid)}"><td><a href="/clients/${encodeURIComponent(c.clientid)}">${esc(c.clientid)}</a></td>
          <td>${esc(c.proto_name)}</td><td>${esc(c.username)}</td><td>${esc(c.ip_address)}${c.port ? ":" + esc(c.port) : ""}</td>
          <td><span class="badge ${c.connected ? "connected" : "disconnected"}">${c.connected ? t("connected") : t("disconnected")}</span></td>
          <td>${esc(c.subscriptions_cnt)}</td><td>${esc(new Date(c.connected_at).toLocaleString())}</td>
          <td>${c.connected ? `<button class="danger kick" data-id="${esc(c.clientid)}" data-ns="${esc(c.namespace)}">${t("kick")}</button>` : ""}</td></tr>`).join("")
          || `<tr><td colspan="8">${t("noData")}</td></tr>`;
        tb.querySelectorAll(".kick").forEach((b) => b.addEventListener("click", () => kick(b.dataset.id, b.dataset.ns, load)));
        pager("clients-pager", d.meta, load); $("#clients-error").textContent = "";
      } catch (e) { if ($("#clients-error")) $("#clients-error").textContent = e.message; }
    };
    ["#client-search", "#client-proto", "#client-state"].forEach((s) => $(s).addEventListener("input", () => load(1)));
    every(3000, () => load());
  }
  async function kick(id, ns, after) {
    if (!confirm(t("confirmKick") + " " + id)) return;
    try {
      // A gateway's client is kicked in its own namespace; MQTT's through /clients.
      const gw = (await protocols()).find((p) => p.namespace === ns && p.gateway);
      const path = gw ? `/api/v5/gateways/${gw.name}/clients/${encodeURIComponent(id)}` : `/api/v5/clients/${encodeURIComponent(id)}`;
      await api("DELETE", path);
    } catch (e) { alert(e.message); }
    if (after) after();
  }

  function clientDetail(main, id) {
    main.innerHTML = `<h1>${t("client")}: ${esc(id)}</h1><div id="client-info" class="cards"></div>
      <h2>${t("navSubscriptions")}</h2><table id="client-subs"><thead><tr><th>${t("topic")}</th><th>QoS</th><th>nl</th><th>rap</th><th>rh</th><th></th></tr></thead><tbody></tbody></table>
      <div class="row" style="margin-top:10px"><label>${t("topic")}<input id="sub-topic"></label><label>QoS<select id="sub-qos"><option>0</option><option>1</option><option>2</option></select></label>
      <button id="sub-add">${t("subscribe")}</button><button class="danger" id="detail-kick">${t("kick")}</button></div><p class="error" id="detail-error"></p>`;
    const enc = encodeURIComponent(id);
    const load = async () => {
      try {
        const [c, subs] = await Promise.all([api("GET", "/api/v5/clients/" + enc), api("GET", `/api/v5/clients/${enc}/subscriptions`)]);
        if (!$("#client-info")) return;
        const fields = [["protocol", c.proto_name + " " + c.proto_ver], ["state", c.connected ? t("connected") : t("disconnected")], ["username", c.username || "–"], ["ipAddress", (c.ip_address || "–") + (c.port ? ":" + c.port : "")],
          ["keepalive", c.keepalive], ["cleanStart", c.clean_start], ["expiryInterval", c.expiry_interval], ["inflight", c.inflight_cnt], ["mqueue", c.mqueue_len], ["mqueueDropped", c.mqueue_dropped], ["connectedAt", new Date(c.connected_at).toLocaleString()], ["createdAt", new Date(c.created_at).toLocaleString()]];
        $("#client-info").innerHTML = fields.map(([k, v]) => `<div class="card stat"><div class="label">${t(k)}</div><div>${esc(v)}</div></div>`).join("");
        $("#client-subs tbody").innerHTML = subs.map((s) => `<tr><td>${esc(s.topic)}</td><td>${s.qos}</td><td>${s.nl}</td><td>${s.rap}</td><td>${s.rh}</td><td><button class="secondary unsub" data-t="${esc(s.topic)}">${t("unsubscribe")}</button></td></tr>`).join("") || `<tr><td colspan="6">${t("noData")}</td></tr>`;
        document.querySelectorAll(".unsub").forEach((b) => b.addEventListener("click", async () => {
          try { await api("POST", `/api/v5/clients/${enc}/unsubscribe`, { topic: b.dataset.t }); load(); } catch (e) { $("#detail-error").textContent = e.message; }
        }));
        $("#detail-kick").onclick = () => kick(id, c.namespace, load);
      } catch (e) { if ($("#detail-error")) $("#detail-error").textContent = e.message; }
    };
    $("#sub-add").addEventListener("click", async () => {
      try { await api("POST", `/api/v5/clients/${enc}/subscribe`, { topic: $("#sub-topic").value, qos: Number($("#sub-qos").value) }); $("#detail-error").textContent = ""; load(); }
      catch (e) { $("#detail-error").textContent = e.message; }
    });
    every(3000, load);
  }

  function listPage(main, title, path, cols, row, extra) {
    main.innerHTML = `<h1>${title}</h1>${extra || ""}<table id="list-table"><thead><tr>${cols.map((c) => `<th>${c}</th>`).join("")}</tr></thead><tbody></tbody></table><div class="pager" id="list-pager"></div><p class="error" id="list-error"></p>`;
    let page = 1;
    const load = async (p) => {
      if (p) page = p;
      try {
        const f = $("#list-filter"); const q = f && f.value.trim() ? "&" + f.dataset.param + "=" + encodeURIComponent(f.value.trim()) : "";
        const d = await api("GET", `${path}?page=${page}&limit=50${q}`); const tb = $("#list-table tbody"); if (!tb) return;
        tb.innerHTML = d.data.map(row).join("") || `<tr><td colspan="${cols.length}">${t("noData")}</td></tr>`;
        pager("list-pager", d.meta, load);
      } catch (e) { if ($("#list-error")) $("#list-error").textContent = e.message; }
    };
    const f = $("#list-filter"); if (f) f.addEventListener("input", () => load(1));
    every(5000, () => load());
    return load;
  }
  function subscriptions(main) {
    listPage(main, t("navSubscriptions"), "/api/v5/subscriptions", [t("clientId"), t("topic"), "QoS", "nl", "rap", "rh"],
      (s) => `<tr><td><a href="/clients/${encodeURIComponent(s.clientid)}">${esc(s.clientid)}</a></td><td>${esc(s.topic)}</td><td>${s.qos}</td><td>${s.nl}</td><td>${s.rap}</td><td>${s.rh}</td></tr>`,
      `<div class="row"><label>${t("clientId")}<input id="list-filter" data-param="clientid"></label></div>`);
  }
  function topics(main) {
    listPage(main, t("navTopics"), "/api/v5/topics", [t("topic"), t("node"), t("sessions")],
      (r) => `<tr><td>${esc(r.topic)}</td><td>${esc(r.node)}</td><td>${esc(r.session_count)}</td></tr>`,
      `<div class="row"><label>${t("topic")}<input id="list-filter" data-param="like_topic"></label></div>`);
  }
  function retained(main) {
    const load = listPage(main, t("navRetained"), "/api/v5/mqtt/retainer/messages", [t("topic"), "QoS", t("size"), t("from"), t("publishedAt"), ""],
      (m) => `<tr><td>${esc(m.topic)}</td><td>${m.qos}</td><td>${m.payload_size}</td><td>${esc(m.from_clientid)}</td><td>${esc(new Date(m.publish_at).toLocaleString())}</td>
        <td><button class="secondary view-ret" data-t="${esc(m.topic)}">${t("view")}</button> <button class="danger del-ret" data-t="${esc(m.topic)}">${t("delete")}</button></td></tr>`,
      `<div class="row"><label>${t("topicFilter")}<input id="list-filter" data-param="topic"></label></div><pre id="ret-view" class="card hidden"></pre>`);
    $("#list-table").addEventListener("click", async (e) => {
      const b = e.target.closest("button"); if (!b) return;
      const path = "/api/v5/mqtt/retainer/message/" + encodeURIComponent(b.dataset.t);
      try {
        if (b.classList.contains("del-ret")) { if (confirm(t("confirmDelete"))) { await api("DELETE", path); load(); } }
        else { const m = await api("GET", path); let text; try { text = new TextDecoder().decode(Uint8Array.from(atob(m.payload), (c) => c.charCodeAt(0))); } catch (_) { text = m.payload; }
          $("#ret-view").textContent = m.topic + "\n" + text; $("#ret-view").classList.remove("hidden"); }
      } catch (err) { $("#list-error").textContent = err.message; }
    });
  }

  // Banned clients (by client id, username or peer host), checked at connect on every protocol.
  function banned(main) {
    const load = listPage(main, t("navBanned"), "/api/v5/banned", [t("banAs"), t("banWho"), t("banReason"), t("banBy"), t("banUntil"), ""],
      (b) => `<tr><td>${esc(b.as)}</td><td>${esc(b.who)}</td><td>${esc(b.reason)}</td><td>${esc(b.by)}</td><td>${esc(b.until)}</td>
        <td><button class="danger del-ban" data-as="${esc(b.as)}" data-who="${esc(b.who)}">${t("delete")}</button></td></tr>`,
      `<form id="ban-form" class="row"><label>${t("banAs")}<select id="ban-as"><option value="clientid">${t("clientId")}</option><option value="username">${t("username")}</option><option value="peerhost">${t("ipAddress")}</option></select></label>
        <label>${t("banWho")}<input id="ban-who" required></label><label>${t("banReason")}<input id="ban-reason"></label>
        <button type="submit">${t("banAdd")}</button></form>`);
    $("#ban-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      try { await api("POST", "/api/v5/banned", { as: $("#ban-as").value, who: $("#ban-who").value.trim(), reason: $("#ban-reason").value });
        $("#ban-who").value = ""; load(1); } catch (err) { $("#list-error").textContent = err.message; }
    });
    $("#list-table").addEventListener("click", async (e) => {
      const b = e.target.closest("button.del-ban"); if (!b) return;
      try { if (confirm(t("confirmDelete"))) { await api("DELETE", "/api/v5/banned/" + encodeURIComponent(b.dataset.as) + "/" + encodeURIComponent(b.dataset.who)); load(); } }
      catch (err) { $("#list-error").textContent = err.message; }
    });
  }

  // Log traces: one client id, topic or IP at debug level into its own file (/api/v5/trace).
  function traces(main) {
    const durations = [["minutes10", 600], ["minutes30", 1800], ["hour1", 3600], ["hours6", 21600], ["day1", 86400]];
    main.innerHTML = `<h1>${t("navTrace")}</h1><p>${t("traceHelp")}</p>
      <form id="trace-form" class="row"><label>${t("name")}<input id="trace-name" required pattern="[A-Za-z][A-Za-z0-9_-]*"></label>
        <label>${t("traceType")}<select id="trace-type"><option value="clientid">${t("clientId")}</option><option value="topic">${t("topic")}</option><option value="ip_address">${t("ipAddress")}</option></select></label>
        <label>${t("traceMatch")}<input id="trace-match" required></label>
        <label>${t("traceDuration")}<select id="trace-duration">${durations.map(([k, s]) => `<option value="${s}">${t(k)}</option>`).join("")}</select></label>
        <label>${t("payloadEncode")}<select id="trace-encode"><option>text</option><option>hex</option><option>hidden</option></select></label>
        <button type="submit">${t("traceCreate")}</button></form>
      <table id="trace-table"><thead><tr><th>${t("name")}</th><th>${t("traceType")}</th><th>${t("traceMatch")}</th><th>${t("traceStart")}</th><th>${t("traceEnd")}</th><th>${t("status")}</th><th>${t("size")}</th><th></th></tr></thead><tbody></tbody></table>
      <p class="error" id="trace-error"></p><h2 id="trace-view-title" class="hidden"></h2><pre id="trace-view" class="card hidden messages" style="max-height:420px"></pre>`;
    const err = (m) => { const el = $("#trace-error"); if (el) el.textContent = m; };
    let viewing = null, position = 0;
    const tail = async () => {
      if (!viewing || !$("#trace-view")) return;
      try {
        const d = await api("GET", `/api/v5/trace/${encodeURIComponent(viewing)}/log?position=${position}&bytes=65536`);
        if (d.meta.bytes > 0) { position = d.meta.position; $("#trace-view").textContent += d.items; }
      } catch (e) { err(e.message); }
    };
    const load = async () => {
      try {
        const list = await api("GET", "/api/v5/trace"); const tb = $("#trace-table tbody"); if (!tb) return;
        tb.innerHTML = list.map((x) => { const size = Object.values(x.log_size || {}).reduce((a, b) => a + b, 0);
          return `<tr data-trace="${esc(x.name)}"><td>${esc(x.name)}</td><td>${esc(x.type)}</td><td>${esc(x[x.type])}</td>
          <td>${esc(new Date(x.start_at).toLocaleString())}</td><td>${esc(new Date(x.end_at).toLocaleString())}</td>
          <td><span class="badge ${esc(x.status)}">${t(x.status)}</span></td><td>${size}</td>
          <td><button class="secondary trace-view" data-n="${esc(x.name)}">${t("view")}</button> <button class="secondary trace-download" data-n="${esc(x.name)}">${t("download")}</button>
            ${x.status === "stopped" ? "" : `<button class="trace-stop" data-n="${esc(x.name)}">${t("stop")}</button>`} <button class="danger trace-delete" data-n="${esc(x.name)}">${t("delete")}</button></td></tr>`; }).join("")
          || `<tr><td colspan="8">${t("noData")}</td></tr>`;
      } catch (e) { err(e.message); }
    };
    $("#trace-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const type = $("#trace-type").value, now = Math.floor(Date.now() / 1000);
      const body = { name: $("#trace-name").value.trim(), type, start_at: now, end_at: now + Number($("#trace-duration").value), payload_encode: $("#trace-encode").value };
      body[type] = $("#trace-match").value.trim();
      try { await api("POST", "/api/v5/trace", body); $("#trace-name").value = ""; err(""); load(); } catch (x) { err(x.message); }
    });
    $("#trace-table").addEventListener("click", async (e) => {
      const b = e.target.closest("button"); if (!b) return;
      const n = b.dataset.n, path = "/api/v5/trace/" + encodeURIComponent(n);
      try {
        if (b.classList.contains("trace-view")) {
          viewing = n; position = 0; $("#trace-view").textContent = ""; $("#trace-view").classList.remove("hidden");
          $("#trace-view-title").textContent = n; $("#trace-view-title").classList.remove("hidden"); await tail();
        } else if (b.classList.contains("trace-download")) {
          // A link cannot carry the bearer token: fetched, then saved from a blob.
          const r = await fetch(path + "/download", { headers: { "Authorization": "Bearer " + (localStorage.getItem("sy_token") || "") } });
          if (!r.ok) throw new Error(r.statusText);
          const a = document.createElement("a"); a.href = URL.createObjectURL(await r.blob()); a.download = n + ".log"; a.setAttribute("download", n + ".log");
          document.body.appendChild(a); a.click(); a.remove(); setTimeout(() => URL.revokeObjectURL(a.href), 1000);
        } else if (b.classList.contains("trace-stop")) { await api("PUT", path + "/stop"); load(); }
        else if (b.classList.contains("trace-delete")) {
          if (confirm(t("confirmDelete"))) { await api("DELETE", path); if (viewing === n) { viewing = null; $("#trace-view").classList.add("hidden"); $("#trace-view-title").classList.add("hidden"); } load(); }
        }
        err("");
      } catch (x) { err(x.message); }
    });
    every(3000, () => { load(); tail(); });
  }

  function gateways(main) {
    main.innerHTML = `<h1>${t("navGateways")}</h1><table id="gateways-table"><thead><tr><th>${t("name")}</th><th>${t("status")}</th><th>${t("listeners")}</th><th>${t("connections")}</th><th></th></tr></thead><tbody></tbody></table><p id="gw-msg" class="error"></p>`;
    const load = async () => {
      try {
        const [gws, ps] = await Promise.all([api("GET", "/api/v5/gateways"), protocols()]); const tb = $("#gateways-table tbody"); if (!tb) return;
        const names = {}; ps.forEach((p) => { names[p.name] = p; });
        const display = (g) => (names[g.name] ? names[g.name].display_name : g.name);
        const protoName = (g) => (names[g.name] ? names[g.name].proto_name : g.name);
        tb.innerHTML = gws.map((g) => `<tr data-gateway="${esc(g.name)}"><td>${esc(display(g))}</td><td><span class="badge ${esc(g.status)}">${t(g.status)}</span></td>
          <td>${(g.listeners || []).map((l) => esc(l.id + " " + l.bind + (l.dtls_peers === undefined ? "" : ` (DTLS peers: ${l.dtls_peers})`))).join("<br>") || "–"}</td><td>${g.current_connections === undefined ? "–" : g.current_connections}</td>
          <td>${g.status === "unloaded" ? "" : `<a href="/clients?proto_name=${encodeURIComponent(protoName(g))}">${t("navClients")}</a>
            <button class="${g.status === "running" ? "danger" : ""} gw-toggle" data-n="${esc(g.name)}" data-e="${g.status === "running" ? "false" : "true"}">${g.status === "running" ? t("disable") : t("enable")}</button>`}</td></tr>`).join("");
        tb.querySelectorAll(".gw-toggle").forEach((b) => b.addEventListener("click", async () => {
          try { await api("PUT", `/api/v5/gateways/${b.dataset.n}/enable/${b.dataset.e}`); load(); } catch (e) { $("#gw-msg").textContent = e.message; }
        }));
      } catch (e) { if ($("#gw-msg")) $("#gw-msg").textContent = e.message; }
    };
    every(5000, load);
  }

  let wsClient = null;
  async function websocket(main) {
    let url = `ws://${location.hostname}:8083/mqtt`;
    try {
      const ls = await api("GET", "/api/v5/listeners"); const w = ls.find((l) => l.id === "mqtt:ws:default");
      if (w) { const port = w.bind.split(":").pop(); url = `ws://${location.hostname}:${port}${w.path || "/mqtt"}`; }
    } catch (_) { /* keep the default */ }
    main.innerHTML = `<h1>${t("navWebsocket")}</h1>
      <div class="card"><div class="row"><label>URL<input id="ws-url" size="36" value="${esc(url)}"></label>
        <label>${t("clientId")}<input id="ws-clientid" value="dashboard-${Math.random().toString(16).slice(2, 8)}"></label>
        <label>${t("version")}<select id="ws-version"><option value="4">3.1.1</option><option value="5">5.0</option></select></label>
        <label>${t("username")}<input id="ws-username"></label><label>${t("password")}<input id="ws-password" type="password"></label>
        <button id="ws-connect">${t("connect")}</button><button class="secondary" id="ws-disconnect">${t("disconnect")}</button>
        <span id="ws-state" class="badge disconnected">${t("disconnected")}</span></div></div>
      <div class="grid2" style="margin-top:16px">
        <div class="card"><h2>${t("navSubscriptions")}</h2><div class="row"><label>${t("topic")}<input id="ws-sub-topic" value="testtopic/#"></label>
          <label>QoS<select id="ws-sub-qos"><option>0</option><option>1</option><option>2</option></select></label><button id="ws-subscribe">${t("subscribe")}</button></div>
          <table id="ws-subs"><tbody></tbody></table></div>
        <div class="card"><h2>${t("publish")}</h2><div class="row"><label>${t("topic")}<input id="ws-pub-topic" value="testtopic/1"></label>
          <label>QoS<select id="ws-pub-qos"><option>0</option><option>1</option><option>2</option></select></label><label>${t("retain")}<input type="checkbox" id="ws-pub-retain"></label></div>
          <label>${t("payload")}<textarea id="ws-pub-payload" rows="3">{"msg": "hello"}</textarea></label><button id="ws-publish">${t("publish")}</button></div></div>
      <div class="card" style="margin-top:16px"><h2>${t("receivedMessages")}</h2><div class="messages" id="ws-messages"></div></div>`;
    const state = (s) => { const el = $("#ws-state"); if (el) { el.textContent = t(s); el.className = "badge " + s; } };
    const subsTable = () => { const tb = $("#ws-subs tbody"); if (tb && wsClient) tb.innerHTML = Object.entries(wsClient.subs || {}).map(([tp, q]) => `<tr><td>${esc(tp)}</td><td>QoS ${q}</td><td><button class="secondary ws-unsub" data-t="${esc(tp)}">${t("unsubscribe")}</button></td></tr>`).join("");
      document.querySelectorAll(".ws-unsub").forEach((b) => b.addEventListener("click", () => wsClient.unsubscribe(b.dataset.t, () => { delete wsClient.subs[b.dataset.t]; subsTable(); }))); };
    if (wsClient && wsClient.connected) { state("connected"); subsTable(); }
    $("#ws-connect").addEventListener("click", () => {
      if (wsClient) wsClient.disconnect();
      wsClient = new window.MqttWs($("#ws-url").value, { clientId: $("#ws-clientid").value, version: Number($("#ws-version").value), username: $("#ws-username").value, password: $("#ws-password").value, keepalive: 60 });
      wsClient.subs = {};
      wsClient.onconnect = (rc) => { if (rc === 0) { wsClient.connected = true; state("connected"); } else state("disconnected"); };
      wsClient.onclose = () => { if (wsClient) wsClient.connected = false; state("disconnected"); };
      wsClient.onmessage = (m) => { const box = $("#ws-messages"); if (!box) return; const d = document.createElement("div");
        d.textContent = `${new Date().toLocaleTimeString()}  [${m.topic}]  QoS ${m.qos}${m.retain ? " retained" : ""}  ${m.payload}`; box.prepend(d); };
      state("connecting"); wsClient.connect();
    });
    $("#ws-disconnect").addEventListener("click", () => { if (wsClient) { wsClient.disconnect(); wsClient = null; } state("disconnected"); });
    $("#ws-subscribe").addEventListener("click", () => {
      if (!wsClient || !wsClient.connected) return; const tp = $("#ws-sub-topic").value, q = Number($("#ws-sub-qos").value);
      wsClient.subscribe(tp, q, (codes) => { if (codes[0] < 128) { wsClient.subs[tp] = codes[0]; subsTable(); } });
    });
    $("#ws-publish").addEventListener("click", () => {
      if (!wsClient || !wsClient.connected) return;
      wsClient.publish($("#ws-pub-topic").value, $("#ws-pub-payload").value, Number($("#ws-pub-qos").value), $("#ws-pub-retain").checked);
    });
  }

  function admins(main) {
    main.innerHTML = `<h1>${t("navAdmins")}</h1>
      <table id="users-table"><thead><tr><th>${t("username")}</th><th>${t("description")}</th><th>${t("createdAt")}</th><th></th></tr></thead><tbody></tbody></table>
      <div class="row" style="margin-top:10px"><label>${t("username")}<input id="new-user"></label><label>${t("password")}<input id="new-user-pwd" type="password"></label>
        <label>${t("description")}<input id="new-user-desc"></label><button id="add-user">${t("add")}</button></div>
      <h2>${t("changePassword")}</h2><div class="row"><label>${t("oldPassword")}<input id="old-pwd" type="password"></label><label>${t("newPassword")}<input id="chg-pwd" type="password"></label><button id="chg-btn">${t("save")}</button></div>
      <h2>${t("apiKeys")}</h2><table id="keys-table"><thead><tr><th>${t("name")}</th><th>API key</th><th>${t("enabled")}</th><th>${t("createdAt")}</th><th></th></tr></thead><tbody></tbody></table>
      <div class="row" style="margin-top:10px"><label>${t("name")}<input id="new-key"></label><button id="add-key">${t("add")}</button></div><pre id="key-secret" class="card hidden"></pre>
      <p class="error" id="admin-msg"></p>`;
    const msg = (m, ok) => { const el = $("#admin-msg"); el.textContent = m; el.className = ok ? "ok" : "error"; };
    const load = async () => {
      try {
        const [users, keys] = await Promise.all([api("GET", "/api/v5/users"), api("GET", "/api/v5/api_key")]);
        $("#users-table tbody").innerHTML = users.map((u) => `<tr><td>${esc(u.username)}</td><td>${esc(u.description)}</td><td>${esc(new Date(u.created_at).toLocaleString())}</td><td><button class="danger del-user" data-u="${esc(u.username)}">${t("delete")}</button></td></tr>`).join("");
        $("#keys-table tbody").innerHTML = keys.map((k) => `<tr><td>${esc(k.name)}</td><td>${esc(k.api_key)}</td><td>${k.enable}</td><td>${esc(new Date(k.created_at).toLocaleString())}</td><td><button class="danger del-key" data-k="${esc(k.name)}">${t("delete")}</button></td></tr>`).join("");
        document.querySelectorAll(".del-user").forEach((b) => b.addEventListener("click", async () => { try { await api("DELETE", "/api/v5/users/" + encodeURIComponent(b.dataset.u)); load(); } catch (e) { msg(e.message); } }));
        document.querySelectorAll(".del-key").forEach((b) => b.addEventListener("click", async () => { try { await api("DELETE", "/api/v5/api_key/" + encodeURIComponent(b.dataset.k)); load(); } catch (e) { msg(e.message); } }));
      } catch (e) { msg(e.message); }
    };
    $("#add-user").addEventListener("click", async () => { try { await api("POST", "/api/v5/users", { username: $("#new-user").value, password: $("#new-user-pwd").value, description: $("#new-user-desc").value }); msg(t("saved"), true); load(); } catch (e) { msg(e.message); } });
    $("#chg-btn").addEventListener("click", async () => { try { await api("POST", "/api/v5/users/" + encodeURIComponent(localStorage.getItem("sy_user")) + "/change_pwd", { old_pwd: $("#old-pwd").value, new_pwd: $("#chg-pwd").value }); msg(t("saved"), true); } catch (e) { msg(e.message); } });
    $("#add-key").addEventListener("click", async () => { try { const k = await api("POST", "/api/v5/api_key", { name: $("#new-key").value }); $("#key-secret").textContent = `API key: ${k.api_key}\nSecret: ${k.api_secret}\n${t("secretOnce")}`; $("#key-secret").classList.remove("hidden"); load(); } catch (e) { msg(e.message); } });
    load();
  }

  // ---- boot ----
  window.I18N.apply();
  if (localStorage.getItem("sy_token")) {
    fetch("/api/v5/nodes", { headers: { "Authorization": "Bearer " + localStorage.getItem("sy_token") } })
      .then((r) => { if (r.ok) start(); else if (r.status === 403) showPwdChange(); else showLogin(); })
      .catch(showLogin);
  } else showLogin();
})();
