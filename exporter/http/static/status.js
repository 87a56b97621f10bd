// voxmon status page: reads the JSON API (and /metrics) every 10 s and fills the page.
// Data only ever reaches the DOM as text (textContent, createTextNode, setAttribute of
// numbers): organisation names and error messages are client input.
(() => {
  "use strict";
  const REFRESH_MS = 10000;
  const TOKEN_KEY = "voxmon.token";
  const MINUTE = 60e3, HOUR = 60 * MINUTE, DAY = 24 * HOUR;
  const FETCH_TIMEOUT_MS = 8000;  // a request that never answers must not freeze the page
  const SVG_NS = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  const firstRejections = new Map();
  let timer = null;

  class AuthNeeded extends Error {}
  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  // ---- formatting (the tests format API values the same way) ----
  const count = (n) => Math.round(n).toLocaleString("en-US");
  const percent = (r) => (r * 100).toFixed(1) + " %";
  const usd = (v) => "$" + v.toFixed(Math.abs(v) < 1 ? 4 : 2);
  const ratioOf = (a, b) => (b ? a / b : 0);
  function duration(ms) {
    if (ms < 1000) return ms.toFixed(0) + " ms";
    if (ms < MINUTE) return (ms / 1000).toFixed(1) + " s";
    if (ms < HOUR) return (ms / MINUTE).toFixed(1) + " min";
    if (ms < DAY) return (ms / HOUR).toFixed(1) + " h";
    return (ms / DAY).toFixed(1) + " d";
  }
  const utc = (ms) => new Date(ms).toISOString().slice(0, 16).replace("T", " ") + " UTC";
  function bytes(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return n.toFixed(i ? 1 : 0) + " " + units[i];
  }

  // ---- DOM, text only ----
  function el(tag, className, ...children) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    for (const child of children) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  const row = (cells) => el("tr", "", ...cells);
  const td = (text, className = "") => el("td", className, text);
  const setText = (id, text) => { $(id).textContent = text; };
  function fillTable(id, rows, empty) {
    const body = $(id).tBodies[0] || $(id).createTBody();
    const columns = $(id).tHead ? $(id).tHead.rows[0].cells.length : 2;
    if (rows.length) { body.replaceChildren(...rows); return; }
    const cell = td(empty, "text muted");
    cell.colSpan = columns;
    body.replaceChildren(row([cell]));
  }

  // ---- API ----
  async function api(path, asText = false) {
    const headers = { Accept: asText ? "text/plain" : "application/json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = "Bearer " + token;
    const response = await fetch(path, {
      headers, cache: "no-store", credentials: "omit", signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
    });
    if (response.status === 401) throw new AuthNeeded(path);
    if (!response.ok) {
      let message = response.statusText;
      try { message = (await response.json()).error.message; } catch (_) { /* not JSON */ }
      throw new ApiError(response.status, message);
    }
    return asText ? response.text() : response.json();
  }
  const range = (period, start, end) =>
    `period=${period}&start=${start}&end=${end}`;

  // ---- Prometheus text format: just enough for voxmon's own families ----
  function parseMetrics(text) {
    const samples = [];
    for (const line of text.split("\n")) {
      const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)/.exec(line);
      if (!match) continue;
      const labels = {};
      for (const pair of (match[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
        labels[pair[1]] = pair[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
      }
      samples.push({ name: match[1], labels, value: Number(match[3]) });
    }
    return samples;
  }
  const pick = (samples, name) => samples.filter((s) => s.name === name);
  const total = (samples, name) => pick(samples, name).reduce((a, s) => a + s.value, 0);

  // ---- merging rolled-up rows (every part is additive) ----
  const PARTS = ["artifacts_received", "artifacts_completed", "artifacts_failed", "ai_cost_usd",
    "transcript_confidence_count", "transcript_confidence_sum", "claim_confidence_count",
    "claim_confidence_sum", "entity_count_sum", "auto_resolved_sum", "disambiguation_sum"];
  function merge(rows) {
    const sum = Object.fromEntries(PARTS.map((p) => [p, 0]));
    sum.e2e_count = 0; sum.e2e_sum = 0;
    for (const r of rows) {
      for (const p of PARTS) sum[p] += r.parts[p];
      sum.e2e_count += r.parts.end_to_end.count;
      sum.e2e_sum += r.parts.end_to_end.sum_ms;
    }
    return sum;
  }
  const failureRate = (s) => ratioOf(s.artifacts_failed, s.artifacts_completed + s.artifacts_failed);

  // ---- sections ----
  function showLive(rt) {
    setText("live-received", count(rt.artifacts_received_1h));
    setText("live-completed", count(rt.artifacts_completed_1h));
    setText("live-failed", count(rt.artifacts_failed_1h));
    setText("live-failure-rate", percent(rt.failure_rate_1h));
    setText("live-stage-failures", count(rt.stage_failures_1h));
    setText("live-cost", usd(rt.ai_cost_usd_1h));
  }

  function showToday(rows, dayStart) {
    const today = rows.filter((r) => Date.parse(r.period_start) >= dayStart);
    const s = merge(today);
    setText("today-received", count(s.artifacts_received));
    setText("today-completed", count(s.artifacts_completed));
    setText("today-failed", count(s.artifacts_failed));
    setText("today-failure-rate", percent(failureRate(s)));
    setText("today-cost", usd(s.ai_cost_usd));
    const through = today.length ? Date.parse(today[today.length - 1].period_start) + HOUR : dayStart;
    setText("today-note", `UTC, ${today.length} rolled-up hours, through ${utc(through).slice(11)}`);
  }

  function showQuality(rows) {
    const s = merge(rows);
    setText("q-auto-resolution", percent(ratioOf(s.auto_resolved_sum, s.entity_count_sum)));
    setText("q-disambiguation", percent(ratioOf(s.disambiguation_sum, s.entity_count_sum)));
    setText("q-transcript-confidence",
      ratioOf(s.transcript_confidence_sum, s.transcript_confidence_count).toFixed(3));
    setText("q-claim-confidence", ratioOf(s.claim_confidence_sum, s.claim_confidence_count).toFixed(3));
    setText("q-cost-per-artifact", usd(ratioOf(s.ai_cost_usd, s.artifacts_received)));
    setText("q-e2e-avg", duration(ratioOf(s.e2e_sum, s.e2e_count)));
  }

  function showRollupNote(rows, jobs) {
    const note = $("rollup-note");
    const hourly = (jobs || []).find((j) => j.job === "rollup-hourly");
    note.hidden = rows.length > 0;
    const next = hourly ? ` (next: ${utc(Date.parse(hourly.next_fire))})` : "";
    note.textContent = "No hourly snapshots in the last 24 h yet: the rolled-up figures appear" +
      ` after rollup-hourly runs${next}; an admin can run it now with` +
      " POST /v1/rollups/rollup-hourly/run.";
  }

  function showStages(stages, inflight, where) {
    const section = $("stages");
    section.dataset.start = where.start; section.dataset.end = where.end;
    fillTable("stages", stages.map((s) => {
      const tr = row([td(s.stage), td(inflight ? count(inflight[s.stage] || 0) : "–"),
        td(count(s.attempts)), td(count(s.successes)), td(count(s.failures)),
        td(percent(s.failure_rate), s.failure_rate > 0.05 ? "failure-rate bad" : "failure-rate"),
        td(duration(s.latency_p50_ms)), td(duration(s.latency_p95_ms))]);
      tr.dataset.stage = s.stage;
      return tr;
    }), "no stages");
  }

  function showOrgs(orgs) {
    fillTable("orgs", orgs.map((o) => {
      const name = o.name === null ? td("Unknown", "text muted org-name") : td(o.name, "text org-name");
      const tr = row([name, td(o.org_id, "text"), td(count(o.received)), td(count(o.completed)),
        td(count(o.failed)), td(percent(o.failure_rate)), td(usd(o.ai_cost_usd)),
        td(duration(o.end_to_end_p95_ms))]);
      tr.dataset.orgId = o.org_id;
      return tr;
    }), "no organisation has rolled-up data in the last 24 h");
  }

  function showJobs(jobs, now) {
    fillTable("jobs", jobs.map((j) => {
      const run = j.last_run;
      const success = run && run.last_success ? Date.parse(run.last_success) : null;
      const result = run ? td(run.result + (run.error ? ": " + run.error : ""),
        run.result === "success" ? "text ok" : "text bad") : td("never run", "text muted");
      return row([td(j.job), td(j.schedule, "text"), td(run ? utc(Date.parse(run.last_run)) : "–"),
        result, td(utc(Date.parse(j.next_fire))),
        td(success === null ? "never" : duration(Math.max(0, now - success)))]);
    }), "no jobs");
  }

  function showNow(samples) {
    const inflight = {};
    for (const s of pick(samples, "voice_pipeline_inflight_artifacts")) inflight[s.labels.stage] = s.value;
    setText("now-inflight", count(Object.values(inflight).reduce((a, b) => a + b, 0)));
    setText("now-stuck", count(total(samples, "voice_pipeline_stuck_artifacts")));
    setText("now-disambiguation", count(total(samples, "voice_pipeline_disambiguation_backlog")));
    setText("now-note", "");
    return inflight;
  }

  function showStorage(samples, ready) {
    const rows = [["readiness", ready.ok ? "ready" : "not ready: " + ready.message, ready.ok]];
    if (samples) {
      const healthy = total(samples, "voxmon_storage_healthy") === 1;
      rows.push(["storage commits", healthy ? "healthy" : "failing", healthy]);
      rows.push(["database size", bytes(total(samples, "voxmon_database_size_bytes")), true]);
      rows.push(["ingest queue", count(total(samples, "voxmon_ingest_queue_depth")) + " events", true]);
      for (const s of pick(samples, "voxmon_snapshot_rows")) {
        rows.push([`${s.labels.period} snapshot rows`, count(s.value), true]);
      }
      const errors = pick(samples, "voxmon_storage_errors_total");
      const failed = errors.reduce((a, s) => a + s.value, 0);
      rows.push(["storage errors", count(failed), failed === 0]);
      for (const s of errors.filter((e) => e.value > 0)) {
        rows.push([`  ${s.labels.kind}`, count(s.value), false]);
      }
    }
    fillTable("storage", rows.map(([k, v, ok]) => row([td(k, "text"), td(v, ok ? "" : "bad")])), "");
  }

  function showRejections(samples) {
    const rows = pick(samples, "voxmon_ingest_rejected_total").sort((a, b) => b.value - a.value);
    fillTable("rejections", rows.map((s) => {
      const reason = s.labels.reason;
      if (!firstRejections.has(reason)) firstRejections.set(reason, s.value);
      return row([td(reason, "text"), td(count(s.value)), td(count(s.value - firstRejections.get(reason)))]);
    }), "no event rejected since voxmon started");
  }

  function metricsUnavailable(reason) {
    for (const id of ["now-inflight", "now-stuck", "now-disambiguation"]) setText(id, "–");
    setText("now-note", reason);
    fillTable("rejections", [], reason);
  }

  // ---- trends: inline SVG, bars = received, line = failure rate (0..100 %) ----
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function trend(id, rows, start, step, slots, label) {
    const chart = $(id), W = 600, H = 120, top = 8, bottom = 16, left = 30;
    const bySlot = new Map(rows.map((r) => [Math.round((Date.parse(r.period_start) - start) / step), r]));
    const received = [...Array(slots).keys()].map((i) => (bySlot.get(i) || null));
    const peak = Math.max(1, ...received.map((r) => (r ? r.parts.artifacts_received : 0)));
    const width = (W - left) / slots, height = H - top - bottom;
    const nodes = [svg("line", { class: "axis", x1: left, x2: W, y1: H - bottom, y2: H - bottom }),
      svg("text", { x: 0, y: top + 8 }, count(peak)), svg("text", { x: 0, y: H - bottom }, "0"),
      svg("text", { x: left, y: H - 3 }, label(start)),
      svg("text", { x: W - 60, y: H - 3 }, label(start + (slots - 1) * step))];
    const points = [];
    received.forEach((r, i) => {
      if (!r) return;
      const n = r.parts.artifacts_received, x = left + i * width;
      const h = (n / peak) * height, rate = failureRate(r.parts);
      const bar = svg("rect", { class: "bar", x: x + 1, y: H - bottom - h, width: Math.max(1, width - 2), height: h });
      bar.append(svg("title", {}, `${label(start + i * step)}: ${count(n)} received, ${percent(rate)} failed`));
      nodes.push(bar);
      points.push(`${(x + width / 2).toFixed(1)},${(H - bottom - rate * height).toFixed(1)}`);
    });
    if (points.length > 1) nodes.push(svg("polyline", { class: "rate", points: points.join(" ") }));
    if (!points.length) nodes.push(svg("text", { x: W / 2 - 60, y: H / 2 }, "no rolled-up data yet"));
    chart.replaceChildren(...nodes);
  }

  // ---- one refresh ----
  async function settle(promise) {
    try { return { ok: true, value: await promise }; } catch (error) {
      if (error instanceof AuthNeeded) throw error;
      return { ok: false, error };
    }
  }
  async function readiness() {
    const response = await fetch("/readyz", {
      cache: "no-store", signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
    });
    if (response.ok) return { ok: true };
    let message = response.statusText;
    try { message = (await response.json()).error.message; } catch (_) { /* not JSON */ }
    return { ok: false, message };
  }

  async function refresh() {
    const rt = await api("/v1/metrics/realtime");
    const now = Date.parse(rt.window_end) - MINUTE;  // the server's clock, to the minute
    const hourStart = Math.floor(now / HOUR) * HOUR, dayStart = Math.floor(now / DAY) * DAY;
    const last24 = { start: hourStart - 24 * HOUR, end: hourStart + HOUR };
    const q24 = range("hourly", last24.start, last24.end);
    const [hourly, daily, stages, orgs, jobs, metrics, ready] = await Promise.all([
      api("/v1/metrics/history?" + q24),
      settle(api("/v1/metrics/history?" + range("daily", dayStart - 29 * DAY, dayStart + DAY))),
      api("/v1/metrics/stages?" + q24),
      api("/v1/metrics/orgs?" + q24 + "&limit=10"),
      settle(api("/v1/rollups")),
      settle(api("/metrics", true).then(parseMetrics)),
      readiness().catch((e) => ({ ok: false, message: e.message })),
    ]);
    showLive(rt);
    showToday(hourly.rows, dayStart);
    showQuality(hourly.rows);
    showRollupNote(hourly.rows, jobs.ok ? jobs.value.jobs : null);
    showOrgs(orgs.orgs);
    trend("trend-24h", hourly.rows, last24.start, HOUR, 25, (ms) => utc(ms).slice(11, 16));
    if (daily.ok) trend("trend-30d", daily.value.rows, dayStart - 29 * DAY, DAY, 30, (ms) => utc(ms).slice(5, 10));
    if (jobs.ok) showJobs(jobs.value.jobs, now);
    let inflight = null;
    if (metrics.ok) {
      inflight = showNow(metrics.value);
      showRejections(metrics.value);
    } else {
      metricsUnavailable(metrics.error.status === 403
        ? "This token lacks the metrics scope: in-flight, storage and rejection figures need it."
        : "GET /metrics failed: " + metrics.error.message);
    }
    showStages(stages.stages, inflight, last24);
    showStorage(metrics.ok ? metrics.value : null, ready);
    $("readiness").textContent = ready.ok ? "ready" : "not ready";
    $("readiness").className = ready.ok ? "badge ok" : "badge bad";
    setText("updated", "updated " + utc(now) + " (server time)");
  }

  async function tick() {
    clearTimeout(timer);
    try {
      await refresh();
      $("error").hidden = true;
      $("token-form").hidden = true;
      $("forget-token").hidden = !sessionStorage.getItem(TOKEN_KEY);
    } catch (error) {
      if (error instanceof AuthNeeded) {
        askForToken(sessionStorage.getItem(TOKEN_KEY) ? "The token was refused." : null);
        return;  // no refresh until a token is given
      }
      if (error instanceof ApiError && error.status === 403) {
        askForToken(`The token was refused (${error.message}).`);
        return;
      }
      $("error").textContent = error instanceof ApiError
        ? `voxmon answered ${error.status}: ${error.message}` : `voxmon is unreachable: ${error.message}`;
      $("error").hidden = false;
    }
    timer = setTimeout(tick, REFRESH_MS);
  }

  function askForToken(reason) {
    if (reason) setText("token-reason", reason + " Enter a token with the read scope.");
    $("token-form").hidden = false;
    $("token-input").focus();
  }

  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
    $("token-input").value = "";
    tick();
  });
  $("forget-token").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    location.reload();
  });
  tick();
})();
