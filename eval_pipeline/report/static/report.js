/* The suite report: reads the embedded JSON (report/items.py describes it) and draws the page. No network. */
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("report-data").textContent);
  const MODELS = D.models.map((m) => m.name);
  const N = D.items.sample_id.length;
  const PAGE = 50;
  const state = { view: "all", search: "", model: "", metric: "", outcome: "", errorsOnly: false, breakdown: {},
                  pairA: MODELS[0] || "", pairB: MODELS[1] || MODELS[0] || "", pairMetric: "", page: 0 };
  let haystack = null;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "on") for (const [ev, fn] of Object.entries(value)) node.addEventListener(ev, fn);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat(Infinity)) if (child !== null && child !== undefined)
      node.append(child instanceof Node ? child : String(child));
    return node;
  }
  const fill = (node, ...children) => node.replaceChildren(
    ...children.flat(Infinity).filter((c) => c !== null && c !== undefined));
  const fmt = (v, d = 3) => (v === null || v === undefined ? "—" : Number(v).toFixed(d));
  const short = (s, n = 160) => (s === null || s === undefined ? "" : s.length > n ? s.slice(0, n) + "…" : s);
  const tid = (s) => String(s).replace(/[^A-Za-z0-9_.-]/g, "_");

  // ---- per item × model status ------------------------------------------------------------------------------
  const cells = D.cells;
  function metricsOf(model) { return Object.keys(cells[model].scores); }
  function present(model, i) { return cells[model].present[i] === 1; }
  function cellStatus(model, metric, i) {
    // 1 pass, 0 fail, null: no usable score (missing or errored)
    const cell = (cells[model].scores[metric] || [])[i];
    if (!cell) return null;
    let status = 1;
    for (const r of cell) { if (r[1] === null || r[1] === undefined) return null; if (r[1] === 0) status = 0; }
    return status;
  }
  function failed(model, i) {
    if (!present(model, i)) return false;
    if (cells[model].error[i]) return true;
    for (const metric of metricsOf(model)) if (cellStatus(model, metric, i) !== 1) return true;
    return false;
  }
  function errored(model, i) {
    if (!present(model, i)) return false;
    if (cells[model].error[i]) return true;
    for (const metric of metricsOf(model)) {
      const cell = cells[model].scores[metric][i];
      if (cell && cell.some((r) => r[2])) return true;
    }
    return false;
  }
  function disagree(a, b, i, metric) {
    if (a === b || !present(a, i) || !present(b, i)) return false;
    const names = metric ? [metric] : metricsOf(a).filter((m) => metricsOf(b).includes(m));
    for (const m of names) {
      const x = cellStatus(a, m, i), y = cellStatus(b, m, i);
      if (x !== null && y !== null && x !== y) return true;
    }
    return false;
  }
  function hasJudge(i, models) {
    return models.some((m) => D.columns.some((c) => c.kind === "judge" && (cells[m].scores[c.name] || [])[i]));
  }

  // ---- filtering ---------------------------------------------------------------------------------------------
  function buildHaystack() {
    haystack = new Array(N);
    for (let i = 0; i < N; i++) {
      const parts = [D.items.sample_id[i], D.items.input[i], D.items.reference[i]];
      for (const m of MODELS) {
        parts.push(cells[m].output[i], cells[m].error[i]);
        for (const metric of metricsOf(m)) {
          const cell = cells[m].scores[metric][i];
          if (cell) for (const r of cell) parts.push(r[2], r[3], r[4]);
        }
      }
      haystack[i] = parts.filter((p) => p).join("\n").toLowerCase();
    }
  }
  function shownRows() {
    const models = state.model ? [state.model] : MODELS;
    const needle = state.search.trim().toLowerCase();
    if (needle && !haystack) buildHaystack();
    const rows = [];
    for (let i = 0; i < N; i++) {
      if (!models.some((m) => present(m, i))) continue;
      let ok = true;
      for (const [key, value] of Object.entries(state.breakdown))
        if (value !== "" && String(D.items.breakdowns[key][i]) !== value) { ok = false; break; }
      if (!ok) continue;
      if (state.errorsOnly && !models.some((m) => errored(m, i))) continue;
      if (state.outcome) {
        const want = { pass: 1, fail: 0, missing: null }[state.outcome];
        const match = (m) => {
          if (!present(m, i)) return false;
          if (state.metric) return metricsOf(m).includes(state.metric) && cellStatus(m, state.metric, i) === want;
          if (want === 1) return !failed(m, i);
          if (want === 0) return failed(m, i);
          return metricsOf(m).some((metric) => cellStatus(m, metric, i) === null);
        };
        if (!models.some(match)) continue;
      }
      if (state.view === "failed" && !models.some((m) => failed(m, i))) continue;
      if (state.view === "disagree" && !disagree(state.pairA, state.pairB, i, state.pairMetric)) continue;
      if (state.view === "judge" && !hasJudge(i, models)) continue;
      if (needle && !haystack[i].includes(needle)) continue;
      rows.push(i);
    }
    return rows;
  }

  // ---- header, metrics, plots, gates, comparison ------------------------------------------------------------
  function header() {
    const runs = el("table", { class: "grid", "data-testid": "runs" },
      el("thead", {}, el("tr", {}, ["model", "Dagster run", "MLflow run", "items", "failed", "errors"].map(
        (h) => el("th", { text: h })))),
      el("tbody", {}, D.models.map((m) => {
        let items = 0, bad = 0, errs = 0;
        for (let i = 0; i < N; i++) if (present(m.name, i)) {
          items++; if (failed(m.name, i)) bad++; if (errored(m.name, i)) errs++;
        }
        return el("tr", {}, el("td", { text: m.name }), el("td", { class: "mono", text: m.dagster_run_id || "—" }),
          el("td", { class: "mono", text: m.mlflow_run_id || "—" }),
          el("td", { "data-testid": "count-items-" + tid(m.name), text: items }),
          el("td", { "data-testid": "count-failed-" + tid(m.name), text: bad }),
          el("td", { "data-testid": "count-errors-" + tid(m.name), text: errs }));
      })));
    return el("header", {},
      el("h1", {}, "Suite ", el("span", { "data-testid": "suite", text: D.suite })),
      D.description ? el("p", { class: "muted", text: D.description }) : null,
      el("dl", { class: "meta" }, el("dt", { text: "task" }), el("dd", { text: D.task }),
        el("dt", { text: "dataset" }), el("dd", { class: "mono", text: D.dataset }),
        el("dt", { text: "items" }), el("dd", { "data-testid": "count-items", text: N }),
        el("dt", { text: "written" }), el("dd", { text: D.written })),
      runs);
  }

  function metricsSection() {
    const overall = D.metrics.filter((r) => r.breakdown_key === null || r.breakdown_key === undefined);
    const table = el("table", { class: "grid", "data-testid": "metrics" },
      el("thead", {}, el("tr", {}, ["metric", "model", "value", "stderr", "95% CI", "CI method", "n", "errors"].map(
        (h) => el("th", { text: h })))),
      el("tbody", {}, overall.map((r) => el("tr", { "data-metric": r.metric, "data-model": r.model },
        el("td", { text: r.metric + (r.k ? ` (k=${r.k})` : "") }), el("td", { text: r.model }),
        el("td", { class: "num", text: fmt(r.value) }), el("td", { class: "num", text: fmt(r.stderr) }),
        el("td", { class: "num", text: r.ci_low === null ? "—" : `[${fmt(r.ci_low)}, ${fmt(r.ci_high)}]` }),
        el("td", { text: r.ci_method || "—" }), el("td", { class: "num", text: r.n ?? "—" }),
        el("td", { class: "num", text: r.errors ?? "—" })))));
    return el("section", { id: "metrics" }, el("h2", { text: "Metrics" }), table, plots());
  }

  function plots() {
    const rows = D.metrics.filter((r) => r.breakdown_key !== null && r.breakdown_key !== undefined);
    const groups = {};
    for (const r of rows) (groups[r.metric + "\u0000" + r.breakdown_key] ||= []).push(r);
    const colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];
    const out = el("div", { class: "plots" });
    for (const [id, list] of Object.entries(groups)) {
      const [metric, key] = id.split("\u0000");
      const values = [...new Set(list.map((r) => r.breakdown_value))];
      const models = MODELS.filter((m) => list.some((r) => r.model === m));
      const top = Math.max(1, ...list.map((r) => r.ci_high ?? r.value ?? 0));
      const bottom = Math.min(0, ...list.map((r) => r.ci_low ?? r.value ?? 0));
      const slot = 18, gap = 16, H = 190, top0 = 14, h = 130;
      const W = Math.max(60 + values.length * (models.length * slot + gap), 50 + models.length * 140);
      const y = (v) => top0 + h - ((v - bottom) / (top - bottom || 1)) * h;
      const ns = "http://www.w3.org/2000/svg";
      const svg = document.createElementNS(ns, "svg");
      svg.setAttribute("width", W); svg.setAttribute("height", H); svg.setAttribute("data-testid", "plot");
      const add = (tag, attrs, text) => {
        const node = document.createElementNS(ns, tag);
        for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
        if (text !== undefined) node.textContent = text;
        svg.append(node); return node;
      };
      for (const t of [bottom, (bottom + top) / 2, top]) {
        add("line", { x1: 40, x2: W, y1: y(t), y2: y(t), class: "gridline" });
        add("text", { x: 36, y: y(t) + 4, "text-anchor": "end", class: "tick" }, t.toFixed(2));
      }
      values.forEach((value, vi) => {
        const x0 = 50 + vi * (models.length * slot + gap);
        add("text", { x: x0 + (models.length * slot) / 2, y: top0 + h + 16, "text-anchor": "middle", class: "tick" },
          short(String(value), 14));
        models.forEach((m, mi) => {
          const r = list.find((q) => q.model === m && q.breakdown_value === value);
          if (!r || r.value === null) return;
          const x = x0 + mi * slot + slot / 2, c = colors[mi % colors.length];
          if (r.ci_low !== null && r.ci_high !== null) {
            add("line", { x1: x, x2: x, y1: y(r.ci_low), y2: y(r.ci_high), stroke: c, "stroke-width": 2 });
            add("line", { x1: x - 4, x2: x + 4, y1: y(r.ci_low), y2: y(r.ci_low), stroke: c });
            add("line", { x1: x - 4, x2: x + 4, y1: y(r.ci_high), y2: y(r.ci_high), stroke: c });
          }
          add("circle", { cx: x, cy: y(r.value), r: 4, fill: c }).append(
            Object.assign(document.createElementNS(ns, "title"), { textContent:
              `${m} · ${key}=${value}: ${fmt(r.value)} [${fmt(r.ci_low)}, ${fmt(r.ci_high)}] n=${r.n}` }));
        });
      });
      models.forEach((m, mi) => add("text", { x: 50 + mi * 140, y: H - 6, fill: colors[mi % colors.length],
                                              class: "legend" }, "● " + m));
      out.append(el("figure", {}, el("figcaption", { text: `${metric} by ${key} (95% CI)` }), svg));
    }
    return rows.length ? el("div", {}, el("h3", { text: "Breakdowns" }), out) : null;
  }

  function gatesSection() {
    const gates = D.models.flatMap((m) => m.gates.map((g) => ({ ...g, model: g.model || m.name })));
    const warnings = D.models.flatMap((m) => m.judge_warnings.map((w) => ({ ...w, model: m.name })));
    if (!gates.length && !warnings.length) return null;
    return el("section", { id: "gates" }, el("h2", { text: "Gates and warnings" }),
      gates.length ? el("table", { class: "grid", "data-testid": "gates" },
        el("thead", {}, el("tr", {}, ["gate", "model", "verdict", "observed", "allowed", "reason"].map(
          (h) => el("th", { text: h })))),
        el("tbody", {}, gates.map((g) => el("tr", {}, el("td", { text: g.check }), el("td", { text: g.model }),
          el("td", { class: g.passed ? "pass" : "fail", text: g.passed ? "pass" : "FAIL" }),
          el("td", { class: "num", text: fmt(g.observed) }), el("td", { class: "num", text: fmt(g.allowed) }),
          el("td", { text: g.reason || "" }))))) : null,
      warnings.length ? el("ul", { class: "warnings", "data-testid": "judge-warnings" }, warnings.map((w) =>
        el("li", { text: `judge warning: ${w.model} / ${w.metric}: ${w.reason}` }))) : null);
  }

  function comparisonSection() {
    if (!D.comparison.length) return null;
    return el("section", { id: "comparison" }, el("h2", { text: "Comparison with the baseline" }),
      el("table", { class: "grid", "data-testid": "comparison" },
        el("thead", {}, el("tr", {}, ["model", "vs", "metric", "value", "baseline", "diff", "95% CI", "n", "test",
          "p", "p (Holm)", "verdict"].map((h) => el("th", { text: h })))),
        el("tbody", {}, D.comparison.map((r) => el("tr", {}, el("td", { text: r.model }),
          el("td", { text: r.baseline }), el("td", { text: r.metric }),
          el("td", { class: "num", text: fmt(r.model_value) }), el("td", { class: "num", text: fmt(r.baseline_value) }),
          el("td", { class: "num", text: r.diff === null ? "—" : (r.diff >= 0 ? "+" : "") + fmt(r.diff) }),
          el("td", { class: "num", text: r.ci_low === null ? "—" : `[${fmt(r.ci_low)}, ${fmt(r.ci_high)}]` }),
          el("td", { class: "num", text: r.n ?? "—" }), el("td", { text: r.test || "" }),
          el("td", { class: "num", text: r.p_value === null ? "—" : Number(r.p_value).toPrecision(3) }),
          el("td", { class: "num", text: r.p_holm === null || r.p_holm === undefined ? "—"
                                         : Number(r.p_holm).toPrecision(3) }),
          el("td", { class: r.verdict === "better" ? "pass" : r.verdict === "worse" ? "fail" : "",
                     title: r.verdict_derived ? "from the paired 95% CI of the difference" : null,
                     text: r.verdict || "—" }))))));
  }

  // ---- the item table ----------------------------------------------------------------------------------------
  function scoreChips(model, i, judgeOnly) {
    const chips = [];
    for (const metric of metricsOf(model)) {
      const column = D.columns.find((c) => c.name === metric);
      if (judgeOnly && column.kind !== "judge") continue;
      const cell = cells[model].scores[metric][i];
      if (!cell) { chips.push(el("span", { class: "chip missing", title: "no score" }, metric + ": missing")); continue; }
      for (const r of cell) {
        const cls = r[2] ? "error" : r[1] === 1 ? "pass" : r[1] === 0 ? "fail" : "missing";
        chips.push(el("span", { class: "chip " + cls, title: r[2] || r[4] || "" },
          `${metric}: ${r[0] === null ? (r[2] ? "error" : "missing") : fmt(r[0], 2)}`));
      }
    }
    return chips;
  }

  function tableSection() {
    const section = el("section", { id: "items" });
    const views = [["all", "All items"], ["failed", "Failed"], ["disagree", "Disagreements"],
                   ["judge", "Judge explanations"]];
    const tabs = el("div", { class: "tabs", role: "tablist" }, views.map(([id, label]) =>
      el("button", { role: "tab", "data-testid": "view-" + id, "aria-selected": String(state.view === id),
                     on: { click: () => { state.view = id; state.page = 0; refresh(); } } }, label)));
    const select = (testid, options, value, onchange) => el("select", { "data-testid": testid,
      on: { change: (e) => { onchange(e.target.value); state.page = 0; refresh(); } } },
      options.map(([v, label]) => el("option", { value: v, selected: v === value, text: label })));
    const metricOptions = [["", "any metric"], ...D.columns.map((c) => [c.name, c.name])];
    const controls = el("div", { class: "controls" },
      el("input", { type: "search", placeholder: "search input, reference, outputs, explanations…",
                    "data-testid": "search", on: { input: (e) => { state.search = e.target.value; state.page = 0;
                                                                    refreshSoon(); } } }),
      select("filter-model", [["", "all models"], ...MODELS.map((m) => [m, m])], state.model, (v) => state.model = v),
      select("filter-metric", metricOptions, state.metric, (v) => state.metric = v),
      select("filter-outcome", [["", "pass or fail"], ["pass", "passed"], ["fail", "failed"],
                                ["missing", "missing/errored"]], state.outcome, (v) => state.outcome = v),
      D.breakdown_keys.map((key) => select("filter-breakdown-" + tid(key),
        [["", `any ${key}`], ...[...new Set(D.items.breakdowns[key].map(String))].sort().map((v) => [v, v])], "",
        (v) => state.breakdown[key] = v)),
      el("label", {}, el("input", { type: "checkbox", "data-testid": "filter-errors",
        on: { change: (e) => { state.errorsOnly = e.target.checked; state.page = 0; refresh(); } } }), " errors only"));
    const pair = el("div", { class: "controls pair", "data-testid": "pair-controls" }, "Disagreements between ",
      select("pair-a", MODELS.map((m) => [m, m]), state.pairA, (v) => state.pairA = v), " and ",
      select("pair-b", MODELS.map((m) => [m, m]), state.pairB, (v) => state.pairB = v), " on ",
      select("pair-metric", metricOptions, "", (v) => state.pairMetric = v),
      el("span", { class: "muted", text: " (one passes, the other does not)" }));
    const pairCounts = el("ul", { class: "pairs" });
    for (let a = 0; a < MODELS.length; a++) for (let b = a + 1; b < MODELS.length; b++) {
      let count = 0;
      for (let i = 0; i < N; i++) if (disagree(MODELS[a], MODELS[b], i, "")) count++;
      pairCounts.append(el("li", {}, `${MODELS[a]} vs ${MODELS[b]}: `,
        el("b", { "data-testid": `count-disagree-${tid(MODELS[a])}--${tid(MODELS[b])}`, text: count }),
        " items disagree on some metric"));
    }
    fill(section, el("h2", { text: "Items" }), el("p", { class: "muted rule", text: D.pass_rule }),
      MODELS.length > 1 ? pairCounts : null, tabs, controls, MODELS.length > 1 ? pair : null,
      el("p", { class: "status" }, el("span", { "data-testid": "count-shown" }), " of ",
        el("span", { text: N }), " items shown ", el("span", { class: "pager" },
          el("button", { "data-testid": "prev", on: { click: () => { state.page--; refresh(); } } }, "‹ prev"),
          el("span", { "data-testid": "page-info" }),
          el("button", { "data-testid": "next", on: { click: () => { state.page++; refresh(); } } }, "next ›"))),
      el("div", { class: "tablewrap" }, el("table", { class: "grid items", "data-testid": "item-table" },
        el("thead", {}), el("tbody", {}))));
    return section;
  }

  let timer = null;
  function refreshSoon() { clearTimeout(timer); timer = setTimeout(refresh, 120); }

  function refresh() {
    const rows = shownRows();
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    state.page = Math.min(Math.max(0, state.page), pages - 1);
    document.querySelector("[data-testid=count-shown]").textContent = rows.length;
    document.querySelector("[data-testid=page-info]").textContent = ` page ${state.page + 1} of ${pages} `;
    for (const tab of document.querySelectorAll("[role=tab]"))
      tab.setAttribute("aria-selected", String(tab.dataset.testid === "view-" + state.view));
    document.querySelector("[data-testid=pair-controls]")?.classList.toggle("hidden", state.view !== "disagree");
    const models = state.view === "disagree" ? [...new Set([state.pairA, state.pairB])]
                   : state.model ? [state.model] : MODELS;
    const table = document.querySelector("[data-testid=item-table]");
    const head = table.tHead, body = table.tBodies[0];
    head.replaceChildren(el("tr", {}, el("th", { text: "item" }), el("th", { text: "input" }),
      el("th", { text: "reference" }), models.map((m) => el("th", { text: m }))));
    const fragment = document.createDocumentFragment();
    for (const i of rows.slice(state.page * PAGE, (state.page + 1) * PAGE)) {
      const judgeOnly = state.view === "judge";
      const tr = el("tr", { "data-testid": "item-row", "data-item": i, class: "clickable",
                            on: { click: () => detail(i) } },
        el("td", { class: "mono", text: D.items.sample_id[i] + (D.items.sample_index[i] ? ` #${D.items.sample_index[i]}`
                                                                                       : "") }),
        el("td", { text: short(D.items.input[i]) }), el("td", { text: short(D.items.reference[i], 80) }),
        models.map((m) => el("td", { class: failed(m, i) ? "cell failed" : "cell" },
          !present(m, i) ? el("span", { class: "muted", text: "—" }) :
          [cells[m].error[i] ? el("div", { class: "err", text: "error: " + short(cells[m].error[i], 120) }) : null,
           el("div", { class: "out", text: short(cells[m].output[i], 200) }),
           el("div", { class: "chips" }, scoreChips(m, i, false)),
           judgeOnly ? judgeLines(m, i) : null])));
      fragment.append(tr);
    }
    body.replaceChildren(fragment);
  }

  function judgeLines(model, i) {
    const lines = [];
    for (const c of D.columns) if (c.kind === "judge") {
      const cell = (cells[model].scores[c.name] || [])[i];
      if (cell) for (const r of cell) lines.push(el("div", { class: "expl", "data-testid": "judge-line" },
        el("b", { text: `${c.name} ${r[0] === null ? "error" : fmt(r[0], 2)}${r[3] ? " (" + r[3] + ")" : ""}: ` }),
        r[2] ? el("span", { class: "err", text: r[2] }) : null, r[4] || ""));
    }
    return lines;
  }

  // ---- the detail panel --------------------------------------------------------------------------------------
  function conversation(messages) {
    return el("ol", { class: "conversation", "data-testid": "conversation" }, messages.map((m) =>
      el("li", { class: "msg " + m.role + (m.is_error ? " error" : "") },
        el("span", { class: "role", text: m.role + (m.name ? ` (${m.name})` : "") }),
        m.content ? el("pre", { text: m.content }) : null,
        (m.tool_calls || []).map((c) => el("div", { class: "toolcall", "data-testid": "tool-call" },
          "→ ", el("b", { text: c.name || "?" }), el("code", { text: c.arguments || "" }))))));
  }

  function detail(i) {
    const panel = document.getElementById("detail");
    const blocks = MODELS.filter((m) => present(m, i)).map((m) => {
      const rows = [];
      for (const metric of metricsOf(m)) {
        const cell = cells[m].scores[metric][i];
        if (!cell) { rows.push(el("tr", {}, el("td", { text: metric }), el("td", { text: "missing" }))); continue; }
        for (const r of cell) rows.push(el("tr", {}, el("td", { text: metric }),
          el("td", { class: r[2] ? "error" : r[1] === 1 ? "pass" : r[1] === 0 ? "fail" : "",
                     text: r[0] === null ? (r[2] ? "error" : "missing") : fmt(r[0]) }),
          el("td", { text: r[3] || "" }), el("td", { class: "expl", "data-testid": r[4] ? "explanation" : null, text: r[4] || "" }),
          el("td", { class: "err", text: r[2] || "" })));
      }
      return el("div", { class: "model-block" }, el("h3", { text: m }),
        cells[m].info[i] ? el("p", { class: "muted", text: cells[m].info[i] }) : null,
        cells[m].error[i] ? el("p", { class: "err", "data-testid": "detail-error", text: "error: " + cells[m].error[i] })
                          : null,
        el("pre", { class: "output", "data-testid": "detail-output", text: cells[m].output[i] ?? "(no output)" }),
        cells[m].conversation && cells[m].conversation[i] ? conversation(cells[m].conversation[i]) : null,
        el("table", { class: "grid" }, el("thead", {}, el("tr", {}, ["metric", "score", "label", "explanation",
          "error"].map((h) => el("th", { text: h })))), el("tbody", {}, rows)));
    });
    fill(panel, el("button", { class: "close", "data-testid": "close-detail",
                                         on: { click: () => panel.classList.add("hidden") } }, "close ✕"),
      el("h2", { text: `Item ${D.items.sample_id[i]}` + (D.items.sample_index[i] ? ` #${D.items.sample_index[i]}` : "") }),
      Object.keys(D.items.breakdowns).length ? el("p", { class: "muted", text: Object.keys(D.items.breakdowns).map(
        (k) => `${k}: ${D.items.breakdowns[k][i]}`).join(" · ") }) : null,
      el("h3", { text: "Input" }), el("pre", { "data-testid": "detail-input", text: D.items.input[i] ?? "" }),
      el("h3", { text: "Reference" }), el("pre", { text: D.items.reference[i] ?? "" }), ...blocks);
    panel.classList.remove("hidden");
    panel.scrollTop = 0;
  }

  // ---- boot --------------------------------------------------------------------------------------------------
  const root = document.getElementById("app");
  const sections = [metricsSection(), gatesSection(), comparisonSection(), tableSection()].filter((s) => s);
  fill(root, header(), el("nav", {}, sections.map((s) => el("a", { href: "#" + s.id, text: s.id }))), sections,
    el("aside", { id: "detail", class: "hidden", "data-testid": "detail" }));
  refresh();
  document.body.dataset.ready = "1";
  window.__reportReadyMs = performance.now();
})();
