// The Authentication and Authorization pages: the chain of authenticators
// (/api/v5/authentication) and the authorization sources and settings (/api/v5/authorization).
// Registered in window.SY_PAGES; app.js hands each page its helpers (api, esc, t, $).
"use strict";
(function () {
  const pages = window.SY_PAGES || (window.SY_PAGES = {});

  // Starting points for a new authenticator or source (EMQX 5's body fields).
  const AUTHN_TEMPLATES = {
    http: { mechanism: "password_based", backend: "http", method: "post", url: "http://127.0.0.1:8080/auth",
      body: { username: "${username}", password: "${password}", clientid: "${clientid}" }, request_timeout: "5s" },
    jwt: { mechanism: "jwt", algorithm: "hmac-based", secret: "change-me", from: "password" },
    postgresql: { mechanism: "password_based", backend: "postgresql", server: "127.0.0.1:5432", database: "mqtt",
      username: "mqtt", password: "secret",
      query: "SELECT password_hash, salt, is_superuser FROM mqtt_user WHERE username = ${username} LIMIT 1",
      password_hash_algorithm: { name: "sha256", salt_position: "prefix" } },
    built_in_database: { mechanism: "password_based", backend: "built_in_database" },
  };
  const AUTHZ_TEMPLATES = {
    http: { type: "http", method: "post", url: "http://127.0.0.1:8080/authz",
      body: { clientid: "${clientid}", username: "${username}", topic: "${topic}", action: "${action}" }, request_timeout: "5s" },
    file: { type: "file", rules: "[[rule]]\npermission = \"allow\"\naction = \"all\"\ntopics = [\"#\"]\n" },
  };

  // A JSON editor with a template picker; returns a getter for the parsed value.
  function editor(h, id, templates) {
    const opts = Object.keys(templates).map((k) => `<option value="${h.esc(k)}">${h.esc(k)}</option>`).join("");
    const html = `<div class="card" style="margin-top:16px"><h2>${h.t("add")}</h2>
      <div class="row"><label>${h.t("template")}<select id="${id}-tpl">${opts}</select></label></div>
      <label>${h.t("configJson")}<textarea id="${id}-json" rows="10" spellcheck="false"></textarea></label>
      <button id="${id}-add">${h.t("add")}</button> <span class="error" id="${id}-add-error"></span></div>`;
    const wire = () => {
      const fill = () => { h.$(`#${id}-json`).value = JSON.stringify(templates[h.$(`#${id}-tpl`).value], null, 2); };
      h.$(`#${id}-tpl`).addEventListener("change", fill); fill();
    };
    const value = () => JSON.parse(h.$(`#${id}-json`).value);
    return { html, wire, value };
  }

  // ---- Authentication ----
  pages["/authentication"] = async function authentication(main, h) {
    const { api, esc, t, $ } = h;
    const ed = editor(h, "authn", AUTHN_TEMPLATES);
    main.innerHTML = `<h1>${t("navAuthn")}</h1>
      <p>${t("authnHelp")}</p>
      <div class="card"><table id="authn-table"><thead><tr><th>#</th><th>ID</th><th>${t("status")}</th><th>${t("enabled")}</th>
        <th>${t("metricTotal")}</th><th>${t("metricSuccess")}</th><th>${t("metricFailed")}</th><th>${t("metricNomatch")}</th><th></th></tr></thead><tbody></tbody></table>
        <p class="error" id="authn-error"></p></div>
      ${ed.html}
      <div class="card" style="margin-top:16px"><h2>${t("testLogin")}</h2><p>${t("testLoginHelp")}</p>
        <div class="row"><label>${t("clientId")}<input id="authn-test-id" value="dashboard-test"></label>
        <label>${t("username")}<input id="authn-test-user"></label><label>${t("password")}<input id="authn-test-pwd" type="password"></label>
        <button id="authn-test">${t("test")}</button> <span id="authn-test-result" class="badge"></span></div></div>`;
    ed.wire();
    const err = (m) => { $("#authn-error").textContent = m || ""; };
    let chain = [];
    const load = async () => {
      try {
        chain = await api("GET", "/api/v5/authentication");
        const statuses = await Promise.all(chain.map((a) => api("GET", `/api/v5/authentication/${encodeURIComponent(a.id)}/status`).catch(() => null)));
        $("#authn-table tbody").innerHTML = chain.length ? chain.map((a, i) => {
          const s = statuses[i] || { status: "", metrics: {} }; const m = s.metrics || {};
          return `<tr data-id="${esc(a.id)}" data-enable="${a.enable !== false}"><td>${i + 1}</td><td>${esc(a.id)}</td><td><span class="badge ${esc(s.status)}">${esc(t(s.status))}</span></td>
            <td>${a.enable === false ? t("disabled") : t("enabled")}</td><td>${esc(m.total)}</td><td>${esc(m.success)}</td><td>${esc(m.failed)}</td><td>${esc(m.nomatch)}</td>
            <td><button class="secondary authn-up" data-i="${i}" ${i === 0 ? "disabled" : ""}>↑</button>
              <button class="secondary authn-down" data-i="${i}" ${i === chain.length - 1 ? "disabled" : ""}>↓</button>
              <button class="secondary authn-toggle" data-i="${i}">${a.enable === false ? t("enable") : t("disable")}</button>
              <button class="danger authn-del" data-i="${i}">${t("delete")}</button></td></tr>`;
        }).join("") : `<tr><td colspan="9">${t("noData")}</td></tr>`;
        err();
      } catch (e) { err(e.message); }
    };
    const path = (a) => `/api/v5/authentication/${encodeURIComponent(a.id)}`;
    $("#authn-table").addEventListener("click", async (e) => {
      const b = e.target.closest("button"); if (!b) return;
      const i = Number(b.dataset.i), a = chain[i]; if (!a) return;
      try {
        if (b.classList.contains("authn-up")) await api("PUT", `${path(a)}/position/${encodeURIComponent("before:" + chain[i - 1].id)}`);
        else if (b.classList.contains("authn-down")) await api("PUT", `${path(a)}/position/${encodeURIComponent("after:" + chain[i + 1].id)}`);
        else if (b.classList.contains("authn-toggle")) { const c = Object.assign({}, a, { enable: a.enable === false }); delete c.id; await api("PUT", path(a), c); }
        else if (b.classList.contains("authn-del")) { if (!confirm(t("confirmDelete"))) return; await api("DELETE", path(a)); }
        load();
      } catch (x) { err(x.message); }
    });
    $("#authn-add").addEventListener("click", async () => {
      $("#authn-add-error").textContent = "";
      try { await api("POST", "/api/v5/authentication", ed.value()); load(); }
      catch (x) { $("#authn-add-error").textContent = x.message; }
    });
    // A real login over the MQTT WebSocket listener: the whole chain answers, as for a device.
    $("#authn-test").addEventListener("click", async () => {
      const out = $("#authn-test-result"); out.textContent = "…"; out.className = "badge connecting";
      let url = `ws://${location.hostname}:8083/mqtt`;
      try {
        const ls = await api("GET", "/api/v5/listeners"); const w = ls.find((l) => l.id === "mqtt:ws:default");
        if (w) url = `ws://${location.hostname}:${w.bind.split(":").pop()}${w.path || "/mqtt"}`;
      } catch (_) { /* keep the default */ }
      const c = new window.MqttWs(url, { clientId: $("#authn-test-id").value, version: 5, username: $("#authn-test-user").value, password: $("#authn-test-pwd").value, keepalive: 30 });
      let done = false;
      c.onconnect = (rc) => { done = true; out.textContent = rc === 0 ? t("testAccepted") : `${t("testRefused")} (0x${rc.toString(16)})`; out.className = "badge " + (rc === 0 ? "connected" : "disconnected"); c.disconnect(); };
      c.onclose = () => { if (!done) { out.textContent = t("testRefused"); out.className = "badge disconnected"; } };
      c.connect();
    });
    load();
  };

  // ---- Authorization ----
  pages["/authorization"] = async function authorization(main, h) {
    const { api, esc, t, $ } = h;
    const ed = editor(h, "authz", AUTHZ_TEMPLATES);
    main.innerHTML = `<h1>${t("navAuthz")}</h1>
      <p>${t("authzHelp")}</p>
      <div class="card"><table id="authz-table"><thead><tr><th>#</th><th>${t("sourceType")}</th><th>${t("status")}</th><th>${t("enabled")}</th>
        <th>${t("metricTotal")}</th><th>${t("metricAllow")}</th><th>${t("metricDeny")}</th><th>${t("metricNomatch")}</th><th>${t("metricIgnore")}</th><th></th></tr></thead><tbody></tbody></table>
        <p class="error" id="authz-error"></p></div>
      <div class="card" style="margin-top:16px"><h2>${t("authzSettings")}</h2>
        <div class="row"><label>${t("noMatch")}<select id="authz-nomatch"><option value="allow">allow</option><option value="deny">deny</option></select></label>
        <label>${t("denyAction")}<select id="authz-deny"><option value="ignore">ignore</option><option value="disconnect">disconnect</option></select></label>
        <label>${t("cacheEnable")}<input type="checkbox" id="authz-cache"></label>
        <label>${t("cacheMax")}<input id="authz-cache-max" type="number" min="1" size="6"></label>
        <label>${t("cacheTtl")}<input id="authz-cache-ttl" size="6"></label>
        <button id="authz-save">${t("save")}</button><button class="secondary" id="authz-clean">${t("cleanCache")}</button>
        <span id="authz-settings-msg"></span></div></div>
      ${ed.html}`;
    ed.wire();
    const err = (m) => { $("#authz-error").textContent = m || ""; };
    let sources = [];
    const load = async () => {
      try {
        sources = (await api("GET", "/api/v5/authorization/sources")).sources || [];
        const statuses = await Promise.all(sources.map((s) => api("GET", `/api/v5/authorization/sources/${encodeURIComponent(s.type)}/status`).catch(() => null)));
        $("#authz-table tbody").innerHTML = sources.length ? sources.map((s, i) => {
          const st = statuses[i] || { status: "", metrics: {} }; const m = st.metrics || {};
          return `<tr data-type="${esc(s.type)}" data-enable="${s.enable !== false}"><td>${i + 1}</td><td>${esc(s.type)}${s.path ? ` <small>${esc(s.path)}</small>` : ""}</td><td><span class="badge ${esc(st.status)}">${esc(t(st.status))}</span></td>
            <td>${s.enable === false ? t("disabled") : t("enabled")}</td><td>${esc(m.total)}</td><td>${esc(m.allow)}</td><td>${esc(m.deny)}</td><td>${esc(m.nomatch)}</td><td>${esc(m.ignore)}</td>
            <td><button class="secondary authz-up" data-i="${i}" ${i === 0 ? "disabled" : ""}>↑</button>
              <button class="secondary authz-down" data-i="${i}" ${i === sources.length - 1 ? "disabled" : ""}>↓</button>
              <button class="secondary authz-toggle" data-i="${i}">${s.enable === false ? t("enable") : t("disable")}</button>
              <button class="danger authz-del" data-i="${i}">${t("delete")}</button></td></tr>`;
        }).join("") : `<tr><td colspan="10">${t("noData")}</td></tr>`;
        const set = await api("GET", "/api/v5/authorization/settings");
        $("#authz-nomatch").value = set.no_match; $("#authz-deny").value = set.deny_action;
        $("#authz-cache").checked = !!set.cache.enable; $("#authz-cache-max").value = set.cache.max_size; $("#authz-cache-ttl").value = set.cache.ttl;
        err();
      } catch (e) { err(e.message); }
    };
    const path = (s) => `/api/v5/authorization/sources/${encodeURIComponent(s.type)}`;
    $("#authz-table").addEventListener("click", async (e) => {
      const b = e.target.closest("button"); if (!b) return;
      const i = Number(b.dataset.i), s = sources[i]; if (!s) return;
      try {
        if (b.classList.contains("authz-up")) await api("POST", `${path(s)}/move`, { position: "before:" + sources[i - 1].type });
        else if (b.classList.contains("authz-down")) await api("POST", `${path(s)}/move`, { position: "after:" + sources[i + 1].type });
        else if (b.classList.contains("authz-toggle")) await api("PUT", path(s), Object.assign({}, s, { enable: s.enable === false }));
        else if (b.classList.contains("authz-del")) { if (!confirm(t("confirmDelete"))) return; await api("DELETE", path(s)); }
        load();
      } catch (x) { err(x.message); }
    });
    const msg = (m) => { $("#authz-settings-msg").textContent = m; };
    $("#authz-save").addEventListener("click", async () => {
      try {
        await api("PUT", "/api/v5/authorization/settings", { no_match: $("#authz-nomatch").value, deny_action: $("#authz-deny").value,
          cache: { enable: $("#authz-cache").checked, max_size: Number($("#authz-cache-max").value), ttl: $("#authz-cache-ttl").value } });
        msg(t("saved")); load();
      } catch (x) { msg(x.message); }
    });
    $("#authz-clean").addEventListener("click", async () => {
      try { await api("DELETE", "/api/v5/authorization/cache"); msg(t("cacheCleaned")); } catch (x) { msg(x.message); }
    });
    $("#authz-add").addEventListener("click", async () => {
      $("#authz-add-error").textContent = "";
      try { await api("POST", "/api/v5/authorization/sources", ed.value()); load(); }
      catch (x) { $("#authz-add-error").textContent = x.message; }
    });
    load();
  };
})();
