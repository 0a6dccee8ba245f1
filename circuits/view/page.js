// headgraph view: draws the head graph of the JSON in #headgraph-data. No network, no libraries.
(function () {
  "use strict";
  const t0 = performance.now();
  const D = JSON.parse(document.getElementById("headgraph-data").textContent);
  const NS = "http://www.w3.org/2000/svg";
  const MAX_DRAWN = 3000; // edges drawn at most (the strongest kept); the counts cover every kept edge
  const N = D.nodes, nNodes = N.name.length, L = D.graph.n_layers;
  const isEdge = D.level === "edge";
  const items = D.items, order = D.order, m = items.norm.length;
  const QKV = ["", "q", "k", "v"];
  const gap = D.meta.gap;
  const byName = new Map(N.name.map((n, i) => [n, i]));
  const $ = (id) => document.getElementById(id);

  // ---- layout: one row per layer, input at the bottom, logits at the top ----
  const cols = D.graph.n_heads + (D.graph.has_mlps ? 1 : 0);
  const CW = Math.max(54, Math.min(110, Math.floor(760 / cols))), RH = Math.max(22, Math.min(64, Math.floor(720 / (L + 2))));
  const PL = 46, PT = 24;
  const W = PL + cols * CW + 16, H = PT * 2 + (L + 1) * RH;
  function xy(i) {
    const c = N.col[i];
    const x = c < 0 ? PL + (cols * CW) / 2 : PL + c * CW + CW / 2;
    return [x, PT + (L - N.layer[i]) * RH];
  }

  // ---- colours: RdBu around 0 (red: ablating lowers the metric) ----
  const RED = [178, 24, 43], WHITE = [247, 247, 247], BLUE = [33, 102, 172];
  function diverging(v, lim) {
    if (v === null || !isFinite(v)) return "#cccccc";
    const a = Math.max(-1, Math.min(1, v / (lim || 1)));
    const end = a < 0 ? RED : BLUE, f = Math.abs(a);
    const c = WHITE.map((w, j) => Math.round(w + (end[j] - w) * f));
    return `rgb(${c[0]},${c[1]},${c[2]})`;
  }
  const fmt = (v, d = 4) => (v === null || v === undefined ? "—" : Number(v).toFixed(d));
  const el = (tag, attrs, parent) => {
    const e = document.createElementNS(NS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  };
  function itemName(i) {
    if (!isEdge) return N.name[items.node[i]];
    const q = QKV[items.qkv[i]];
    return N.name[items.src[i]] + "->" + N.name[items.dst[i]] + (q ? "<" + q + ">" : "");
  }
  const rankOf = new Int32Array(m);
  order.forEach((p, r) => { rankOf[p] = r + 1; });

  // ---- selection: circuits.selection.top_k / threshold, then prune_mask (edges) ----
  function prune(keep) {
    const reached = new Uint8Array(nNodes), feeds = new Uint8Array(nNodes);
    reached[0] = 1;
    for (let i = 0; i < m; i++) if (keep[i] && reached[items.src[i]]) reached[items.dst[i]] = 1;
    feeds[nNodes - 1] = 1;
    for (let i = m - 1; i >= 0; i--) if (keep[i] && feeds[items.dst[i]]) feeds[items.src[i]] = 1;
    for (let i = 0; i < m; i++) keep[i] = keep[i] && reached[items.src[i]] && feeds[items.dst[i]] ? 1 : 0;
  }
  function select(state) {
    const keep = new Uint8Array(m);
    if (state.mode === "top_k") {
      for (let r = 0; r < Math.min(state.k, order.length); r++) keep[order[r]] = 1;
    } else {
      for (let i = 0; i < m; i++) { const v = items.norm[i]; if (v !== null && Math.abs(v) >= state.t) keep[i] = 1; }
    }
    if (isEdge) prune(keep);
    const nodes = new Set();
    let nEdges = 0;
    for (let i = 0; i < m; i++) {
      if (!keep[i]) continue;
      if (isEdge) { nodes.add(items.src[i]); nodes.add(items.dst[i]); nEdges++; } else nodes.add(items.node[i]);
    }
    return { keep, nodes, nEdges };
  }

  // ---- tooltip and info panel ----
  const tip = $("tooltip");
  function show(html, ev) {
    $("info").innerHTML = html;
    tip.innerHTML = html;
    tip.hidden = false;
    tip.style.left = Math.min(ev.clientX + 14, window.innerWidth - 260) + "px";
    tip.style.top = ev.clientY + 12 + "px";
  }
  const hide = () => { tip.hidden = true; };
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  function nodeHtml(i, kept) {
    const a = N.annotations[N.name[i]] || {};
    const rows = [
      ["kind", N.kind[i]],
      [isEdge ? "Δ metric (sum of out-edges)" : "Δ metric", fmt(N.value[i])],
      ["normalized", fmt(N.norm[i])],
      ["rank by |effect|", N.rank[i] === null ? "unscored" : "#" + N.rank[i]],
      ["in circuit", kept ? "yes" : "no"],
    ];
    if (a.role) rows.push(["role", a.role]);
    if (a.labels && a.labels.length) rows.push(["code labels", a.labels.join(", ")]);
    if (N.kind[i] === "head" && D.attention) rows.push(["click", "attention on " + D.attention.prompts.length + " prompts"]);
    return `<b>${esc(N.name[i])}</b><table>${rows.map((r) => `<tr><td>${r[0]}</td><td>${esc(r[1])}</td></tr>`).join("")}</table>`;
  }
  function edgeHtml(i) {
    const v = items.norm[i];
    return `<b>${esc(itemName(i))}</b><table><tr><td>normalized</td><td>${fmt(v)}</td></tr>` +
      `<tr><td>Δ metric</td><td>${fmt(v === null || gap === null ? null : v * gap)}</td></tr>` +
      `<tr><td>rank by |score|</td><td>#${rankOf[i]} of ${m}</td></tr></table>`;
  }

  // ---- drawing ----
  function drawGrid(svg) {
    svg.setAttribute("width", W); svg.setAttribute("height", H);
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    const g = el("g", { class: "axis" }, svg);
    for (let l = -1; l <= L; l++) {
      const y = PT + (L - l) * RH;
      el("line", { class: "row-line", x1: PL - 6, x2: W - 8, y1: y, y2: y }, g);
      const t = el("text", { x: 4, y: y + 3 }, g);
      t.textContent = l < 0 ? "input" : l === L ? "logits" : "L" + l;
    }
    return { edges: el("g", { class: "edges" }, svg), nodes: el("g", { class: "nodes" }, svg) };
  }
  function pill(g, i, fill, label) {
    const [x, y] = xy(i);
    const grp = el("g", { class: "node kept", "data-name": N.name[i], transform: `translate(${x},${y})` }, g);
    const w = N.col[i] < 0 ? 60 : CW - 8, h = Math.min(18, RH - 6);
    el("rect", { x: -w / 2, y: -h / 2, width: w, height: h, rx: 5, fill }, grp);
    el("text", {}, grp).textContent = label || N.name[i];
    return grp;
  }
  function curve(i, dx) {
    const [x1, y1] = xy(items.src[i]), [x2, y2] = xy(items.dst[i]);
    const ym = (y1 + y2) / 2;
    return `M${x1},${y1}C${x1},${ym} ${x2 + dx},${ym} ${x2 + dx},${y2}`;
  }

  const svg = $("graph");
  const layers = drawGrid(svg);
  let selected = null;
  function render(state) {
    const sel = select(state);
    layers.edges.replaceChildren();
    layers.nodes.replaceChildren();
    const eFrag = document.createDocumentFragment(), nFrag = document.createDocumentFragment();
    let drawn = 0;
    if (isEdge && sel.nEdges) {
      let lim = 0;
      for (const p of order) if (sel.keep[p]) { lim = Math.abs(items.norm[p] || 0); break; }
      for (const p of order) {
        if (!sel.keep[p]) continue;
        if (drawn >= MAX_DRAWN) break;
        const v = items.norm[p] || 0;
        const path = el("path", {
          class: "edge", d: curve(p, (items.qkv[p] - 2) * 8 * (items.qkv[p] > 0)),
          stroke: v < 0 ? "#b2182b" : "#2166ac", "stroke-opacity": 0.55,
          "stroke-width": (0.6 + 5 * Math.abs(v) / (lim || 1)).toFixed(2), "data-item": p,
        }, eFrag);
        path.addEventListener("mousemove", (ev) => show(edgeHtml(p), ev));
        path.addEventListener("mouseleave", hide);
        drawn++;
      }
    }
    let lim = 0; // colour scale: the strongest kept head or MLP (the input's summed effect would wash them out)
    sel.nodes.forEach((i) => { if (N.col[i] >= 0) lim = Math.max(lim, Math.abs(N.norm[i] || 0)); });
    for (let i = 0; i < nNodes; i++) {
      const kept = sel.nodes.has(i);
      let g;
      if (kept) g = pill(nFrag, i, diverging(N.norm[i], lim));
      else if (N.col[i] >= 0) {
        const [x, y] = xy(i);
        g = el("g", { class: "node ghost", "data-name": N.name[i], transform: `translate(${x},${y})` }, nFrag);
        el("circle", { r: 3 }, g);
      } else {
        g = pill(nFrag, i, "#eeeeee");
        g.setAttribute("class", "node anchor");
      }
      if (N.name[i] === selected) g.classList.add("selected");
      g.addEventListener("mousemove", (ev) => show(nodeHtml(i, kept), ev));
      g.addEventListener("mouseleave", hide);
      if (N.kind[i] === "head") g.addEventListener("click", () => clickHead(N.name[i]));
    }
    layers.edges.appendChild(eFrag);
    layers.nodes.appendChild(nFrag);
    const what = state.mode === "top_k" ? `top ${state.k}` : `|normalized| ≥ ${fmt(state.t)}`;
    const unit = isEdge ? "edges" : "nodes";
    $("counts").textContent = `${what} of ${m} scored ${unit} → ${sel.nodes.size} nodes, ${sel.nEdges} edges` +
      (isEdge ? " after pruning" + (sel.nEdges > drawn ? ` (drawn: the ${drawn} strongest)` : "") : "");
    Object.assign(svg.dataset, {
      mode: state.mode, k: String(state.k), t: String(state.t),
      nodes: String(sel.nodes.size), edges: String(sel.nEdges), drawnEdges: String(drawn),
    });
  }

  // ---- controls: top-k (log slider above 1000 items) or threshold (quadratic slider) ----
  const n = order.length;
  let tmax = 0;
  for (let i = 0; i < m; i++) tmax = Math.max(tmax, Math.abs(items.norm[i] || 0));
  const logK = n > 1000;
  const slider = $("slider"), value = $("value"), modeSel = $("mode");
  const state = { mode: D.initial.mode, k: Math.min(D.initial.k, n), t: D.initial.t === null ? tmax / 4 : D.initial.t };
  const kOf = (p) => (logK ? Math.round(Math.expm1((p / 1000) * Math.log1p(n))) : p);
  const posOfK = (k) => (logK ? Math.round((Math.log1p(k) / Math.log1p(n)) * 1000) : k);
  const tOf = (p) => tmax * (p / 1000) ** 2;
  const posOfT = (t) => Math.round(Math.sqrt(Math.min(1, t / (tmax || 1))) * 1000);
  function syncControls() {
    modeSel.value = state.mode;
    if (state.mode === "top_k") {
      slider.max = logK ? 1000 : n; slider.value = posOfK(state.k); value.step = 1; value.value = state.k;
    } else {
      slider.max = 1000; slider.value = posOfT(state.t); value.step = "any"; value.value = state.t;
    }
  }
  slider.addEventListener("input", () => {
    const p = Number(slider.value);
    if (state.mode === "top_k") state.k = kOf(p); else state.t = tOf(p);
    value.value = state.mode === "top_k" ? state.k : state.t;
    render(state);
  });
  value.addEventListener("change", () => {
    const v = Number(value.value);
    if (!isFinite(v) || v < 0) return;
    if (state.mode === "top_k") state.k = Math.min(n, Math.round(v)); else state.t = v;
    syncControls();
    render(state);
  });
  modeSel.addEventListener("change", () => { state.mode = modeSel.value; syncControls(); render(state); });

  // ---- attention panel ----
  function clickHead(name) {
    selected = name;
    svg.querySelectorAll(".node.selected").forEach((e) => e.classList.remove("selected"));
    const g = svg.querySelector(`.node[data-name="${name}"]`);
    if (g) g.classList.add("selected");
    const box = $("attention");
    box.replaceChildren();
    $("attention-title").textContent = "Attention of " + name;
    const A = D.attention;
    if (!A) {
      box.textContent = "No attention patterns in this page: run headgraph view with --model to store them.";
      return;
    }
    const pats = A.heads[name];
    if (!pats) {
      box.textContent = `No stored pattern for ${name}; stored heads: ${Object.keys(A.heads).join(", ")}.`;
      return;
    }
    A.prompts.forEach((toks, p) => box.appendChild(heatmap(toks, pats[p], p)));
  }
  function heatmap(toks, pat, p) {
    const div = document.createElement("div");
    div.className = "attn-prompt";
    div.dataset.prompt = p;
    const cap = document.createElement("div");
    cap.className = "attn-text";
    cap.textContent = `prompt ${p + 1}: ` + toks.join("");
    div.appendChild(cap);
    const n = toks.length, c = Math.max(7, Math.min(16, Math.floor(300 / n))), lab = 64;
    const s = el("svg", { width: lab + n * c + 4, height: lab + n * c + 4, class: "attn" }, div);
    const label = (t) => JSON.stringify(t).slice(1, -1).slice(0, 10);
    toks.forEach((t, j) => {
      const k = el("text", { class: "tok key", transform: `translate(${lab + j * c + c / 2 + 3},${lab - 3}) rotate(-65)`, "font-size": 9 }, s);
      k.textContent = label(t);
      const q = el("text", { class: "tok query", x: lab - 3, y: lab + j * c + c / 2 + 3, "text-anchor": "end", "font-size": 9 }, s);
      q.textContent = label(t);
    });
    for (let qi = 0; qi < n; qi++) {
      for (let kj = 0; kj <= qi; kj++) {
        const w = pat[qi][kj];
        const r = el("rect", { x: lab + kj * c, y: lab + qi * c, width: c, height: c, fill: blues(w) }, s);
        r.addEventListener("mousemove", (ev) => show(`<b>${esc(toks[qi])}</b> → <b>${esc(toks[kj])}</b>: ${fmt(w, 3)}`, ev));
        r.addEventListener("mouseleave", hide);
      }
    }
    return div;
  }
  function blues(w) {
    const f = Math.max(0, Math.min(1, w));
    const c = [247, 251, 255].map((a, j) => Math.round(a + ([8, 48, 107][j] - a) * f));
    return `rgb(${c[0]},${c[1]},${c[2]})`;
  }

  // ---- faithfulness curve ----
  function drawFaithfulness(F) {
    $("faith-panel").hidden = false;
    const s = $("faith"), w = 380, h = 230, l = 40, r = 10, t = 10, b = 34;
    const pts = [...F.curves.signed, ...F.curves.absolute].filter((p) => p.f !== null);
    const lo = Math.min(0, ...pts.map((p) => p.f)), hi = Math.max(1, ...pts.map((p) => p.f));
    const xs = pts.map((p) => Math.log10(p.percent)), x0 = Math.min(...xs), x1 = Math.max(...xs);
    const X = (pc) => l + ((Math.log10(pc) - x0) / (x1 - x0 || 1)) * (w - l - r);
    const Y = (f) => t + ((hi - f) / (hi - lo || 1)) * (h - t - b);
    const ax = el("g", { class: "axis" }, s);
    el("line", { x1: l, x2: w - r, y1: Y(1), y2: Y(1), stroke: "#aaa", "stroke-dasharray": "3 3" }, ax);
    el("line", { x1: l, x2: w - r, y1: Y(0), y2: Y(0), stroke: "#ddd" }, ax);
    [lo, 0, 1, hi].filter((v, i, a) => a.indexOf(v) === i).forEach((v) => {
      el("text", { x: l - 4, y: Y(v) + 3, "text-anchor": "end" }, ax).textContent = v.toFixed(1);
    });
    F.curves.signed.forEach((p) => {
      el("text", { x: X(p.percent), y: h - b + 14, "text-anchor": "middle" }, ax).textContent = p.percent;
    });
    el("text", { x: (l + w) / 2, y: h - 4, "text-anchor": "middle" }, ax).textContent =
      `circuit size, % of ${F.level === "node" ? "nodes" : "edges"} (log)`;
    [["signed", "#b2182b"], ["absolute", "#2166ac"]].forEach(([name, col], j) => {
      const P = F.curves[name].filter((p) => p.f !== null);
      el("polyline", { class: "faith-line " + name, fill: "none", stroke: col, "stroke-width": 1.8,
        points: P.map((p) => `${X(p.percent)},${Y(p.f)}`).join(" ") }, s);
      P.forEach((p) => el("circle", { cx: X(p.percent), cy: Y(p.f), r: 2.5, fill: col }, s));
      el("text", { x: w - r - 4, y: h - b - 24 + 13 * j, fill: col, "font-size": 11, "text-anchor": "end" }, s).textContent =
        name === "signed" ? `signed (CPR ${fmt(F.cpr, 3)})` : `|score| (CMD ${fmt(F.cmd, 3)})`;
    });
    $("faith-note").textContent = `${F.ablation} ablation` +
      (F.own === null ? "" : ` · the file's own circuit: faithfulness ${fmt(F.own, 3)}`);
  }

  // ---- diff of two files ----
  function drawDiff(X) {
    $("diff-panel").hidden = false;
    $("diff-meta").textContent = `A: ${X.a} · B: ${X.b} · top-${X.top_k} heads, Jaccard ${fmt(X.jaccard, 3)}`;
    $("diff-text").textContent = X.text;
    const s = $("diff"), lay = drawGrid(s);
    const status = new Map();
    for (const k of ["both", "lost", "gained"]) for (const nm of X.nodes[k]) status.set(nm, k);
    const ring = new Map();
    for (const k of ["kept", "moved", "lost", "gained"]) for (const row of X.heads[k]) ring.set(row.node, [k, row]);
    const col = { both: "#bdbdbd", lost: "#d73027", gained: "#1a9850" }, fill = { both: "#e6e6e6", lost: "#f4a582", gained: "#a6dba0" };
    const counts = { lost: 0, gained: 0, both: 0 };
    for (const k of ["both", "lost", "gained"]) {
      for (const name of X.edges[k]) {
        const m2 = /^([^-<>]+)->([^-<>]+)(?:<([qkv])>)?$/.exec(name);
        if (!m2 || !byName.has(m2[1]) || !byName.has(m2[2])) continue;
        const [x1, y1] = xy(byName.get(m2[1])), [x2, y2] = xy(byName.get(m2[2]));
        const ym = (y1 + y2) / 2;
        const p = el("path", { class: "edge diff-edge " + k, d: `M${x1},${y1}C${x1},${ym} ${x2},${ym} ${x2},${y2}`,
          stroke: col[k], "stroke-width": k === "both" ? 0.8 : 1.6, "stroke-opacity": 0.7,
          "stroke-dasharray": k === "lost" ? "4 3" : "" }, lay.edges);
        p.addEventListener("mousemove", (ev) => show(`<b>${esc(name)}</b>: ${k === "both" ? "in both" : k + " by B"}`, ev));
        p.addEventListener("mouseleave", hide);
        counts[k]++;
      }
    }
    const names = new Set([...status.keys(), ...ring.keys()]);
    for (const name of names) {
      const i = byName.get(name);
      if (i === undefined) continue;
      const st = status.get(name), rg = ring.get(name);
      const g = pill(lay.nodes, i, st ? fill[st] : "#ffffff");
      g.classList.add("diff-node", st || "none");
      if (rg) {
        const [k, row] = rg;
        g.classList.add("head-" + k);
        const rc = { kept: "#555", moved: "#7b3294", lost: "#d73027", gained: "#1a9850" }[k];
        g.querySelector("rect").setAttribute("stroke", rc);
        g.querySelector("rect").setAttribute("stroke-width", k === "kept" ? 1 : 2.5);
        const rank = (r) => (r === null ? "zero" : "#" + r);
        g.addEventListener("mousemove", (ev) => show(`<b>${esc(name)}</b>: ${k} in the top ${X.top_k}<br>` +
          `A ${rank(row.rank_a)} ${fmt(row.score_a)} → B ${rank(row.rank_b)} ${fmt(row.score_b)}`, ev));
        g.addEventListener("mouseleave", hide);
      }
    }
    Object.assign(s.dataset, { lostEdges: counts.lost, gainedEdges: counts.gained, bothEdges: counts.both });
  }

  // ---- start ----
  $("title").textContent = D.title;
  const M = D.meta, sel = M.selection;
  const rule = sel.rule ? Object.entries(sel).map(([k, v]) => `${k}=${v}`).join(", ") : "no rule recorded";
  $("meta").textContent = `${M.model} · task ${M.task} · ${M.n_pairs} pairs (seed ${M.seed}) · ${M.method} (${M.level} scores)` +
    ` · ${M.metric}: clean ${fmt(M.clean, 3)}, corrupt ${fmt(M.corrupt, 3)}` +
    ` · the file's circuit: ${M.circuit_nodes} nodes, ${M.circuit_edges} edges (${rule})`;
  $("attention").textContent = D.attention
    ? `Click a head: its attention on ${D.attention.prompts.length} example prompts (${Object.keys(D.attention.heads).length} heads stored).`
    : "No attention patterns in this page: run headgraph view with --model to store them.";
  syncControls();
  render(state);
  if (D.faithfulness) drawFaithfulness(D.faithfulness);
  if (D.diff) drawDiff(D.diff);
  window.headgraphInitMs = performance.now() - t0;
  window.headgraphReadyAt = performance.now();
  document.body.dataset.ready = "1";
})();
