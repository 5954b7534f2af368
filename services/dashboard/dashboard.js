/* plantpulse dashboard: the site picker and a live page per site, fed by /v1/stream (SSE).
   Plain JavaScript, no external resources. The token comes from ?token= or a prompt and is
   kept in sessionStorage for this tab. */
"use strict";

(() => {
  const TOKEN_KEY = "plantpulse.token";
  const KEEPALIVE_S = 5; // asked of the server; silence for 3x this counts as a lost connection
  const DASH = "–";

  // ---- token and API ----------------------------------------------------------------------
  let token = (() => {
    const url = new URL(window.location.href);
    const given = url.searchParams.get("token");
    if (given) {
      sessionStorage.setItem(TOKEN_KEY, given);
      url.searchParams.delete("token"); // keep it out of the address bar and the history
      history.replaceState(null, "", url.pathname + url.search + url.hash);
    }
    return sessionStorage.getItem(TOKEN_KEY) || "";
  })();

  function askToken(reason) {
    const dialog = document.getElementById("token-dialog");
    const input = document.getElementById("token-input");
    document.getElementById("token-reason").textContent = reason;
    input.value = "";
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => {
        token = input.value.trim();
        sessionStorage.setItem(TOKEN_KEY, token);
        resolve();
      }, { once: true });
      dialog.showModal();
    });
  }

  async function api(path) {
    for (;;) {
      const headers = token ? { Authorization: `Bearer ${token}` } : {};
      const r = await fetch(path, { headers, cache: "no-store" });
      if (r.status === 401 || r.status === 403) {
        let reason = `The server said ${r.status}.`;
        try { reason = (await r.json()).detail || reason; } catch (e) { /* not JSON */ }
        await askToken(`${reason} Enter a token for this site.`);
        continue;
      }
      if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
      return r.json();
    }
  }

  // ---- formatting ---------------------------------------------------------------------------
  const UNITS = { degC: "°C", m3: "m³", "particles/m3": "/m³", "m3/h": "m³/h" };
  const unit = (u) => UNITS[u] || u;

  function fmt(x, digits) {
    if (x === null || x === undefined || Number.isNaN(x)) return DASH;
    const a = Math.abs(x);
    const d = digits !== undefined ? digits : a >= 1000 ? 0 : a >= 100 ? 1 : 2;
    return x.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
  }

  function fmtAge(s) {
    if (s === null || s === undefined || !Number.isFinite(s)) return DASH;
    if (s < 90) return `${Math.max(0, Math.round(s))} s`;
    if (s < 5400) return `${Math.round(s / 60)} min`;
    return `${Math.round(s / 3600)} h`;
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  const setText = (id, text) => { document.getElementById(id).textContent = text; };

  function setConn(kind, text) {
    const c = document.getElementById("conn");
    c.className = `conn conn-${kind}`;
    c.textContent = text;
    document.body.classList.toggle("offline", kind === "lost");
  }

  // ---- site picker --------------------------------------------------------------------------
  async function picker() {
    const list = document.getElementById("sites");
    try {
      const sites = await api("/v1/dashboard/sites");
      list.replaceChildren(...sites.map((s) => {
        const li = el("li");
        const a = el("a", "", s.name);
        a.href = `/dashboard/${encodeURIComponent(s.id)}`;
        a.append(el("div", "note", `${s.id} · ${s.timezone}`));
        li.append(a);
        return li;
      }));
      setConn("live", `${sites.length} site${sites.length === 1 ? "" : "s"}`);
    } catch (e) {
      setConn("lost", "Cannot load sites");
    }
  }

  // ---- site page ----------------------------------------------------------------------------
  const S = {
    site: document.body.dataset.site,
    tz: undefined,
    offsetMs: 0, // server clock minus ours
    channels: new Map(), // channel_id -> latest channel event
    rooms: new Map(), // area -> {card, badge, rows: Map(channel_id -> row cells)}
    alerts: new Map(),
    siteData: null,
    lastMessageMs: 0,
    es: null,
    retryMs: 1000,
    retryAt: 0,
  };

  const serverNowS = () => (Date.now() + S.offsetMs) / 1000;

  function localTime(ns) {
    return new Date(ns / 1e6).toLocaleTimeString("en-GB", {
      timeZone: S.tz, hour: "2-digit", minute: "2-digit",
    });
  }

  function buildRooms(cleanrooms) {
    const box = document.getElementById("cleanrooms");
    if (!cleanrooms.length) {
      box.replaceChildren(el("p", "note", "This site has no cleanrooms."));
      return;
    }
    box.replaceChildren(...cleanrooms.map((room) => {
      const card = el("article", "room status-unknown");
      card.id = `room-${room.area}`;
      const head = el("header");
      head.append(el("h3", "", room.description || room.area));
      const badge = el("span", "badge status-unknown", "NO DATA");
      head.append(badge);
      card.append(head);
      card.append(el("p", "sub", `${room.area} · ISO ${room.iso_class}`));
      const table = el("table", "signals");
      const rows = new Map();
      for (const ch of room.channels) {
        const tr = el("tr");
        tr.dataset.channel = ch.channel_id;
        const dot = el("span", "dot status-unknown");
        const cells = {
          dot, value: el("td", "v", DASH), age: el("td", "age", DASH), limits: ch.limits, unit: ch.unit,
        };
        const tdDot = el("td");
        tdDot.append(dot);
        tr.append(tdDot, el("td", "name", ch.label), cells.value, el("td", "lim", limitText(ch.limits)), cells.age);
        table.append(tr);
        rows.set(ch.channel_id, cells);
      }
      card.append(table);
      S.rooms.set(room.area, { card, badge, rows });
      return card;
    }));
  }

  function limitText(l) {
    const u = unit(l.unit);
    if (l.action_low !== null && l.action_high !== null) return `${fmt(l.action_low, 0)}–${fmt(l.action_high, 0)} ${u}`;
    if (l.action_low !== null) return `> ${fmt(l.action_low, 0)} ${u}`;
    return `≤ ${fmt(l.action_high, 0)} ${u}`;
  }

  const RANK = { green: 0, unknown: 1, amber: 2, red: 3 };
  const LABEL = { green: "OK", unknown: "NO DATA", amber: "ALERT LIMIT", red: "ACTION LIMIT" };

  function renderRoom(area) {
    const room = S.rooms.get(area);
    if (!room) return;
    let worst = null;
    for (const id of room.rows.keys()) {
      const ch = S.channels.get(id);
      const st = ch && ch.status ? ch.status : "unknown";
      if (worst === null || RANK[st] > RANK[worst]) worst = st;
    }
    worst = worst || "unknown";
    room.card.className = `room status-${worst}`;
    room.badge.className = `badge status-${worst}`;
    room.badge.textContent = LABEL[worst];
  }

  function applyChannel(d) {
    S.channels.set(d.channel_id, d);
    const room = S.rooms.get(d.area);
    const cells = room && room.rows.get(d.channel_id);
    if (!cells) return;
    const digits = d.unit === "particles/m3" ? 0 : 1;
    cells.value.textContent = `${fmt(d.value, digits)} ${unit(d.unit)}`;
    cells.dot.className = `dot status-${d.status || "unknown"}`;
    renderRoom(d.area);
  }

  function windowFigure(rolling, windowS, utility) {
    if (!rolling) return null;
    const w = rolling.find((x) => x.window_s === windowS);
    const u = w && w.utilities && w.utilities[utility];
    return u && u.total && u.total.value !== null ? u.total : null;
  }

  function compare(today, before) {
    if (today === null || before === null || before === undefined || before <= 0) return ["", ""];
    const pct = ((today - before) / before) * 100;
    return [`${pct >= 0 ? "▲ +" : "▼ "}${fmt(pct, 1)} %`, pct >= 0 ? "up" : "down"];
  }

  function applySite(d) {
    S.siteData = d;
    if (d.timezone) S.tz = d.timezone;
    const u = d.utilities || {};
    const at = d.yesterday_same_time_ns ? localTime(d.yesterday_same_time_ns) : "";
    const e = u.electricity;
    if (e) {
      setText("power-value", fmt(e.rate_per_h));
      const demand = windowFigure(d.rolling, 900, "electricity");
      const parts = [e.rate_per_h === null ? `no data in the last ${e.rate_window_s} s` : `mean of the last ${e.rate_window_s} s`];
      if (demand && demand.coverage >= 0.95) parts.push(`15-min mean ${fmt(demand.value * 4)} kW`);
      else if (demand) parts.push(`15-min mean: ${fmt(demand.coverage * 100, 0)} % of the window covered`);
      if (e.rate_per_h !== null && e.rate_coverage < 0.95) parts.push(`coverage ${fmt(e.rate_coverage * 100, 0)} %`);
      setText("power-note", parts.join(" · "));
      setText("energy-today", fmt(e.today));
      const [delta, cls] = compare(e.today, e.yesterday_same_time);
      const cmp = document.getElementById("energy-compare");
      cmp.replaceChildren();
      if (delta) cmp.append(el("span", cls, delta), " ");
      cmp.append(e.yesterday_same_time === null ? "No data for yesterday"
        : `vs yesterday to ${at}: ${fmt(e.yesterday_same_time)} kWh`);
      setText("energy-yesterday", e.yesterday === null ? "" : `Yesterday, full day: ${fmt(e.yesterday)} kWh`);
    }
    for (const [key, name] of [["natural_gas", "gas"], ["water", "water"]]) {
      const x = u[key];
      if (!x) continue;
      setText(`${name}-rate`, fmt(x.rate_per_h));
      const ux = unit(x.unit);
      const [delta] = compare(x.today, x.yesterday_same_time);
      setText(`${name}-today`, `Today ${fmt(x.today)} ${ux}${delta ? ` (${delta})` : ""}`);
      setText(`${name}-yesterday`, x.yesterday === null ? "No data for yesterday"
        : `Yesterday to ${at}: ${fmt(x.yesterday_same_time)} ${ux} · full day ${fmt(x.yesterday)} ${ux}`);
    }
    if (d.now_ns) S.offsetMs = d.now_ns / 1e6 - Date.now();
  }

  function applyAlert(a) {
    if (a.state === "cleared") S.alerts.delete(a.id);
    else S.alerts.set(a.id, a);
    renderAlerts();
  }

  function renderAlerts() {
    const list = document.getElementById("alert-list");
    const count = document.getElementById("alert-count");
    const alerts = [...S.alerts.values()].sort((a, b) =>
      (a.state === "active" ? 0 : 1) - (b.state === "active" ? 0 : 1) || b.ts_ns - a.ts_ns);
    count.textContent = String(alerts.length);
    count.className = `count${alerts.some((a) => a.state === "active") ? " active" : ""}`;
    if (!alerts.length) {
      list.replaceChildren(el("li", "none", "No active alerts"));
      return;
    }
    list.replaceChildren(...alerts.map((a) => {
      const li = el("li", `sev-${a.severity} ${a.state}`);
      li.dataset.alert = a.id;
      li.append(el("div", "msg", a.message));
      const where = [a.area, a.channel_id].filter(Boolean).join(" · ");
      let meta = `${a.severity.toUpperCase()} · since ${localTime(a.ts_ns)}${where ? ` · ${where}` : ""}`;
      if (a.state === "acknowledged") meta += ` · acknowledged${a.acknowledged_by ? ` by ${a.acknowledged_by}` : ""}`;
      li.append(el("div", "meta", meta));
      return li;
    }));
  }

  function tick() {
    const now = serverNowS();
    if (S.tz) {
      setText("site-clock", new Date(now * 1000).toLocaleString("en-GB", {
        timeZone: S.tz, weekday: "short", hour: "2-digit", minute: "2-digit", second: "2-digit",
      }));
    }
    const counts = { good: 0, other: 0 };
    let newest = null;
    for (const ch of S.channels.values()) {
      if (ch.quality === "good") counts.good += 1; else counts.other += 1;
      if (ch.ts_ns && (newest === null || ch.ts_ns > newest)) newest = ch.ts_ns;
    }
    for (const room of S.rooms.values()) {
      for (const [id, cells] of room.rows) {
        const ch = S.channels.get(id);
        if (!ch) continue;
        const age = ch.ts_ns ? now - ch.ts_ns / 1e9 : null;
        cells.age.textContent = ch.quality === "good" ? fmtAge(age) : `${ch.quality.toUpperCase()} ${fmtAge(age)}`;
        cells.age.className = `age q-${ch.quality}`;
      }
    }
    const total = counts.good + counts.other;
    setText("data-quality", total ? `${counts.good} of ${total} channels good${counts.other ? ` · ${counts.other} stale, bad or missing` : ""}` : "no channel data yet");
    setText("data-age", newest ? `newest reading ${fmtAge(now - newest / 1e9)} ago` : DASH);
    watchdog();
  }

  // ---- the stream ---------------------------------------------------------------------------
  function connect() {
    const q = new URLSearchParams({ site: S.site, keepalive_s: String(KEEPALIVE_S) });
    if (token) q.set("token", token);
    const es = new EventSource(`/v1/stream?${q}`);
    S.es = es;
    S.lastMessageMs = Date.now();
    const seen = () => {
      S.lastMessageMs = Date.now();
      S.retryMs = 1000;
      setConn("live", "● LIVE");
    };
    es.onopen = seen;
    es.addEventListener("channel", (m) => { seen(); applyChannel(JSON.parse(m.data)); });
    es.addEventListener("site", (m) => { seen(); applySite(JSON.parse(m.data)); });
    es.addEventListener("alert", (m) => { seen(); applyAlert(JSON.parse(m.data)); });
    es.addEventListener("heartbeat", (m) => {
      seen();
      S.offsetMs = JSON.parse(m.data).now_ns / 1e6 - Date.now();
    });
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) lost("Connection lost");
      else setConn("reconnecting", "Reconnecting…");
    };
  }

  function lost(why) {
    if (S.es) S.es.close();
    S.es = null;
    S.retryAt = Date.now() + S.retryMs;
    setConn("lost", `${why}: retrying in ${Math.round(S.retryMs / 1000)} s`);
    S.retryMs = Math.min(S.retryMs * 2, 30000);
  }

  function watchdog() {
    if (S.es && Date.now() - S.lastMessageMs > 3 * KEEPALIVE_S * 1000) {
      lost("Connection lost");
    } else if (!S.es && S.retryAt && Date.now() >= S.retryAt) {
      S.retryAt = 0;
      setConn("reconnecting", "Reconnecting…");
      // the overview checks the token (a 401 prompts) and refreshes what was missed
      api(`/v1/sites/${encodeURIComponent(S.site)}/overview`)
        .then((o) => { load(o); connect(); })
        .catch(() => lost("Server unreachable"));
    } else if (!S.es && S.retryAt) {
      setConn("lost", `Connection lost: retrying in ${Math.ceil((S.retryAt - Date.now()) / 1000)} s`);
    }
  }

  function load(o) {
    setText("site-name", o.name);
    document.title = `plantpulse · ${o.name}`;
    if (!S.rooms.size) buildRooms(o.cleanrooms);
    applySite(o.figures);
    S.alerts.clear();
    for (const a of o.alerts) S.alerts.set(a.id, a);
    renderAlerts();
  }

  async function sitePage() {
    try {
      load(await api(`/v1/sites/${encodeURIComponent(S.site)}/overview`));
      connect();
    } catch (e) {
      lost("Server unreachable");
    }
    setInterval(tick, 1000);
  }

  if (document.body.dataset.page === "site") sitePage();
  else picker();
})();
