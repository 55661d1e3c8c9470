// The Rules page: rules (EMQX rule SQL) with a test panel, webhooks (http connector + action
// of one name), and their status and counters (/api/v5/rules, /rule_test, /connectors,
// /actions). Registered in window.SY_PAGES; app.js hands it its helpers (api, esc, t, $).
// Its strings live here in English and Simplified Chinese; only the nav label is in i18n.js.
"use strict";
(function () {
  const pages = window.SY_PAGES || (window.SY_PAGES = {});
  const S = {
    rulesHelp: ["A rule selects messages or client events with EMQX's rule SQL and hands its output to actions: republish, console, or a webhook (http:<name>).",
      "规则用 EMQX 规则 SQL 选取消息或客户端事件，并把输出交给动作：重新发布、控制台或 Webhook（http:<名称>）。"],
    ruleId: ["Rule ID", "规则 ID"], sql: ["SQL", "SQL"], ruleActions: ["Actions (JSON array)", "动作（JSON 数组）"],
    description: ["Description", "描述"], from: ["From", "来源"], matched: ["Matched", "命中"], passed: ["Passed", "通过"],
    failed: ["Failed", "失败"], actionsOk: ["Actions OK", "动作成功"], actionsFailed: ["Actions failed", "动作失败"],
    createRule: ["Create rule", "创建规则"], saveRule: ["Save rule", "保存规则"], edit: ["Edit", "编辑"], resetMetrics: ["Reset counters", "重置计数"],
    testPanel: ["Test the SQL", "测试 SQL"], testHelp: ["Runs the SQL on a sample event without publishing anything. event_type defaults to message_publish.",
      "在示例事件上运行 SQL，不发布任何消息。event_type 默认为 message_publish。"],
    context: ["Context (JSON)", "上下文（JSON）"], runTest: ["Run test", "运行测试"], output: ["Output", "输出"],
    notMatched: ["Not matched (412): the topic does not match FROM or WHERE is false.", "未命中（412）：主题不匹配 FROM 或 WHERE 为假。"],
    webhooks: ["Webhooks", "Webhook"], webhookHelp: ["A webhook is an http connector (the server) and an http action (path, method, body templates such as ${clientid}) of the same name; a rule uses it as http:<name>.",
      "Webhook 由同名的 http 连接器（服务器）和 http 动作（路径、方法、${clientid} 等模板）组成；规则以 http:<名称> 引用它。"],
    url: ["URL", "URL"], path: ["Path", "路径"], method: ["Method", "方法"], body: ["Body (empty: the output as JSON)", "请求体（为空：输出的 JSON）"],
    addWebhook: ["Add webhook", "添加 Webhook"], connector: ["Connector", "连接器"], success: ["Success", "成功"],
    queuing: ["Queued", "排队"], dropped: ["Dropped", "丢弃"], retried: ["Retried", "重试"], usedBy: ["Rules", "规则"],
    missingAction: ["names a missing action", "引用了不存在的动作"],
  };
  const L = (h, k) => (S[k] ? S[k][window.I18N && window.I18N.lang === "zh" ? 1 : 0] : h.t(k));
  const DEFAULT_SQL = "SELECT clientid, payload.temp AS t\nFROM \"sensors/#\"\nWHERE payload.temp > 30";
  const DEFAULT_ACTIONS = [{ function: "republish", args: { topic: "alerts/${clientid}", payload: "${t}" } }, { function: "console" }];
  const DEFAULT_CONTEXT = { topic: "sensors/1", clientid: "c1", payload: "{\"temp\": 35}" };

  pages["/rules"] = async function rules(main, h) {
    const { api, esc, t, $ } = h;
    const l = (k) => L(h, k);
    main.innerHTML = `<h1>${t("navRules")}</h1><p>${esc(l("rulesHelp"))}</p>
      <div class="card"><table id="rules-table"><thead><tr><th>ID</th><th>${l("from")}</th><th>${t("status")}</th>
        <th>${l("matched")}</th><th>${l("passed")}</th><th>${l("failed")}</th><th>${l("actionsOk")}</th><th>${l("actionsFailed")}</th><th></th></tr></thead><tbody></tbody></table>
        <p class="error" id="rules-error"></p></div>
      <div class="card" style="margin-top:16px"><h2 id="rule-form-title">${l("createRule")}</h2>
        <div class="row"><label>${l("ruleId")}<input id="rule-id" placeholder="hot_sensors"></label>
          <label style="flex:1">${l("description")}<input id="rule-desc"></label></div>
        <label>${l("sql")}<textarea id="rule-sql" rows="5" spellcheck="false"></textarea></label>
        <label>${l("ruleActions")}<textarea id="rule-actions" rows="5" spellcheck="false"></textarea></label>
        <button id="rule-save">${l("createRule")}</button> <span class="error" id="rule-save-error"></span>
        <h2 style="margin-top:16px">${l("testPanel")}</h2><p>${l("testHelp")}</p>
        <label>${l("context")}<textarea id="rule-context" rows="4" spellcheck="false"></textarea></label>
        <button class="secondary" id="rule-test">${l("runTest")}</button>
        <pre id="rule-test-output" class="card messages" style="margin-top:8px"></pre></div>
      <div class="card" style="margin-top:16px"><h2>${l("webhooks")}</h2><p>${esc(l("webhookHelp"))}</p>
        <div style="overflow-x:auto"><table id="hooks-table"><thead><tr><th>${t("name")}</th><th>${l("url")}</th><th>${t("status")}</th><th>${l("matched")}</th>
          <th>${l("success")}</th><th>${l("failed")}</th><th>${l("queuing")}</th><th>${l("dropped")}</th><th>${l("retried")}</th><th>${l("usedBy")}</th><th></th></tr></thead><tbody></tbody></table></div>
        <div class="row" style="margin-top:12px"><label>${t("name")}<input id="hook-name" placeholder="hook"></label>
          <label style="flex:1">${l("url")}<input id="hook-url" placeholder="http://127.0.0.1:8080/api"></label>
          <label>${l("path")}<input id="hook-path" placeholder="/events/\${clientid}"></label>
          <label>${l("method")}<select id="hook-method"><option>post</option><option>put</option><option>get</option><option>delete</option></select></label></div>
        <label>${l("body")}<textarea id="hook-body" rows="3" spellcheck="false" placeholder='{"client":"\${clientid}","temp":\${t}}'></textarea></label>
        <button id="hook-add">${l("addWebhook")}</button> <span class="error" id="hook-error"></span></div>`;
    $("#rule-sql").value = DEFAULT_SQL;
    $("#rule-actions").value = JSON.stringify(DEFAULT_ACTIONS, null, 2);
    $("#rule-context").value = JSON.stringify(DEFAULT_CONTEXT, null, 2);
    let editing = null, ruleList = [], actionIds = new Set();
    const setErr = (id, m) => { const el = $(id); if (el) el.textContent = m || ""; };

    const loadRules = async () => {
      const [list, actions] = await Promise.all([api("GET", "/api/v5/rules?limit=1000"), api("GET", "/api/v5/actions")]);
      ruleList = list.data; actionIds = new Set(actions.map((a) => `${a.type}:${a.name}`));
      const metrics = await Promise.all(ruleList.map((r) => api("GET", `/api/v5/rules/${encodeURIComponent(r.id)}/metrics`).catch(() => ({ metrics: {} }))));
      const tb = $("#rules-table tbody"); if (!tb) return false;
      tb.innerHTML = ruleList.length ? ruleList.map((r, i) => {
        const m = metrics[i].metrics || {};
        const missing = (r.actions || []).filter((a) => typeof a === "string" && !actionIds.has(a));
        return `<tr data-id="${esc(r.id)}"><td>${esc(r.id)}${missing.length ? ` <span class="badge disconnected" title="${esc(missing.join(", "))}">${l("missingAction")}</span>` : ""}</td>
          <td>${esc((r.from || []).join(", "))}</td><td><span class="badge ${r.enable ? "connected" : "stopped"}">${r.enable ? t("enabled") : t("disabled")}</span></td>
          <td>${esc(m.matched)}</td><td>${esc(m.passed)}</td><td>${esc(m.failed)}</td><td>${esc(m["actions.success"])}</td><td>${esc(m["actions.failed"])}</td>
          <td><button class="secondary rule-edit" data-i="${i}">${l("edit")}</button>
            <button class="secondary rule-toggle" data-i="${i}">${r.enable ? t("disable") : t("enable")}</button>
            <button class="secondary rule-reset" data-i="${i}">${l("resetMetrics")}</button>
            <button class="danger rule-del" data-i="${i}">${t("delete")}</button></td></tr>`;
      }).join("") : `<tr><td colspan="9">${t("noData")}</td></tr>`;
      return true;
    };

    const loadHooks = async () => {
      const [connectors, actions] = await Promise.all([api("GET", "/api/v5/connectors"), api("GET", "/api/v5/actions")]);
      const metrics = await Promise.all(actions.map((a) => api("GET", `/api/v5/actions/${encodeURIComponent(a.type + ":" + a.name)}/metrics`).catch(() => ({ metrics: {} }))));
      const urls = Object.fromEntries(connectors.map((c) => [c.name, c.url]));
      const tb = $("#hooks-table tbody"); if (!tb) return false;
      tb.innerHTML = actions.length ? actions.map((a, i) => {
        const m = metrics[i].metrics || {};
        return `<tr data-id="${esc(a.type + ":" + a.name)}"><td>${esc(a.type)}:${esc(a.name)}</td><td>${esc(urls[a.connector] || a.connector)}${esc((a.parameters || {}).path || "")}</td>
          <td><span class="badge ${esc(a.status)}" title="${esc(a.status_reason || "")}">${esc(t(a.status))}</span></td>
          <td>${esc(m.matched)}</td><td>${esc(m.success)}</td><td>${esc(m.failed)}</td><td>${esc(m.queuing)}</td><td>${esc(m.dropped)}</td><td>${esc(m.retried)}</td>
          <td>${esc((a.rules || []).join(", "))}</td>
          <td><button class="secondary hook-toggle" data-id="${esc(a.type + ":" + a.name)}" data-enable="${a.enable !== false}">${a.enable === false ? t("enable") : t("disable")}</button>
            <button class="danger hook-del" data-id="${esc(a.type + ":" + a.name)}" data-connector="${esc(a.type + ":" + a.connector)}">${t("delete")}</button></td></tr>`;
      }).join("") : `<tr><td colspan="11">${t("noData")}</td></tr>`;
      return true;
    };

    const load = async () => {
      try { await loadRules(); await loadHooks(); setErr("#rules-error"); } catch (e) { setErr("#rules-error", e.message); }
    };
    // Counters move while the page is open; stop when another page replaced this one.
    const timer = setInterval(() => { if (!document.getElementById("rules-table")) clearInterval(timer); else load(); }, 5000);

    $("#rules-table").addEventListener("click", async (e) => {
      const b = e.target.closest("button"); if (!b) return;
      const r = ruleList[Number(b.dataset.i)]; if (!r) return;
      const path = `/api/v5/rules/${encodeURIComponent(r.id)}`;
      try {
        if (b.classList.contains("rule-edit")) {
          editing = r.id; $("#rule-id").value = r.id; $("#rule-id").disabled = true; $("#rule-desc").value = r.description || "";
          $("#rule-sql").value = r.sql; $("#rule-actions").value = JSON.stringify(r.actions || [], null, 2);
          $("#rule-form-title").textContent = `${l("edit")} ${r.id}`; $("#rule-save").textContent = l("saveRule");
          return;
        }
        if (b.classList.contains("rule-toggle")) await api("PUT", path, { enable: !r.enable });
        else if (b.classList.contains("rule-reset")) await api("PUT", `${path}/metrics/reset`);
        else if (b.classList.contains("rule-del") && confirm(`${t("delete")} ${r.id}?`)) await api("DELETE", path);
        load();
      } catch (x) { setErr("#rules-error", x.message); }
    });

    $("#rule-save").addEventListener("click", async () => {
      try {
        const actions = JSON.parse($("#rule-actions").value || "[]");
        const body = { sql: $("#rule-sql").value, actions, description: $("#rule-desc").value };
        if (editing) await api("PUT", `/api/v5/rules/${encodeURIComponent(editing)}`, body);
        else { const id = $("#rule-id").value.trim(); if (id) body.id = id; await api("POST", "/api/v5/rules", body); }
        editing = null; $("#rule-id").disabled = false; $("#rule-id").value = "";
        $("#rule-form-title").textContent = l("createRule"); $("#rule-save").textContent = l("createRule");
        setErr("#rule-save-error"); load();
      } catch (x) { setErr("#rule-save-error", x.message); }
    });

    $("#rule-test").addEventListener("click", async () => {
      const out = $("#rule-test-output");
      try {
        const context = JSON.parse($("#rule-context").value || "{}");
        const r = await fetch("/api/v5/rule_test", { method: "POST", headers: { "Content-Type": "application/json",
          "Authorization": "Bearer " + (localStorage.getItem("sy_token") || "") }, body: JSON.stringify({ sql: $("#rule-sql").value, context }) });
        const data = await r.json().catch(() => ({}));
        out.classList.toggle("error", !r.ok);
        out.textContent = r.ok ? `${l("output")}:\n${JSON.stringify(data, null, 2)}` : r.status === 412 ? l("notMatched") : `${r.status} ${data.code || ""}: ${data.message || ""}`;
      } catch (x) { out.classList.add("error"); out.textContent = x.message; }
    });

    $("#hooks-table").addEventListener("click", async (e) => {
      const b = e.target.closest("button"); if (!b) return;
      const id = b.dataset.id, path = `/api/v5/actions/${encodeURIComponent(id)}`;
      try {
        if (b.classList.contains("hook-toggle")) await api("PUT", `${path}/enable/${b.dataset.enable === "true" ? "false" : "true"}`);
        else if (b.classList.contains("hook-del") && confirm(`${t("delete")} ${id}?`)) {
          await api("DELETE", `${path}?also_delete_dep_actions=true`);
          await api("DELETE", `/api/v5/connectors/${encodeURIComponent(b.dataset.connector)}`).catch(() => null);
        }
        setErr("#hook-error"); load();
      } catch (x) { setErr("#hook-error", x.message); }
    });

    $("#hook-add").addEventListener("click", async () => {
      const name = $("#hook-name").value.trim();
      try {
        await api("POST", "/api/v5/connectors", { type: "http", name, url: $("#hook-url").value.trim() });
        const parameters = { method: $("#hook-method").value };
        if ($("#hook-path").value.trim()) parameters.path = $("#hook-path").value.trim();
        if ($("#hook-body").value.trim()) parameters.body = $("#hook-body").value;
        try { await api("POST", "/api/v5/actions", { type: "http", name, connector: name, parameters }); }
        catch (x) { await api("DELETE", `/api/v5/connectors/http:${encodeURIComponent(name)}`).catch(() => null); throw x; }
        $("#hook-name").value = ""; setErr("#hook-error"); load();
      } catch (x) { setErr("#hook-error", x.message); }
    });
    load();
  };
})();
