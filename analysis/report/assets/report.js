// Comparison report: synchronized players, cache timelines and quality curves.
// Data: window.REPORT (data/index.js); per comparison group, data/<id>.js calls
// window.reportData(id, {label: {timeline, clips}}) when its section nears the viewport.
// Works from file:// (scripts, not fetch); nothing is loaded from the network.
(function () {
  "use strict";
  const R = window.REPORT;
  // Cache regions present in the timelines, from the region table: {code, name, color}.
  const REGIONS = R.regions || [];
  const MEMORY = (REGIONS.find(r => r.name === "memory") || {}).code;
  const DRIFT_S = 0.3;                    // a follower further than this from the leader is re-seeked
  const DEFAULT_SHOWN = 6;                // more variants than this: the reader adds the rest
  // The choice lives in the address (#show=window|tether), so a comparison can be linked to.
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("show");
  const labels = R.variants.map(v => v.label);
  const state = { shown: new Set(fromHash != null ? fromHash.split("|").filter(l => labels.includes(l))
                                 : labels.slice(0, labels.length <= DEFAULT_SHOWN ? undefined : 4)),
                  layer: 0, dim: R.dims[0] };
  const groups = [];

  // ---- lazily loaded per-group data ----
  const loaded = {}, waiting = {};
  window.reportData = function (id, data) {
    loaded[id] = data;
    (waiting[id] || []).forEach(f => f());
    delete waiting[id];
  };
  function loadData(id, cb) {
    if (loaded[id]) return cb(loaded[id]);
    if (!waiting[id]) {
      waiting[id] = [];
      const s = document.createElement("script");
      s.src = "data/" + id + ".js";
      document.body.appendChild(s);
    }
    waiting[id].push(() => cb(loaded[id]));
  }

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else if (k === "style") e.style.cssText = v;
      else if (k in e && typeof v !== "string") e[k] = v; else e.setAttribute(k, v);
    }
    for (const c of children) if (c != null) e.append(c);
    return e;
  }
  const fmt = t => (isFinite(t) ? t : 0).toFixed(1);
  // "tether alpha=0.1 tau=0.6": the preset in bold, the settings that tell variants apart muted
  function variantName(label) {
    const i = label.indexOf(" ");
    return i < 0 ? el("b", {}, label) : el("span", {}, el("b", {}, label.slice(0, i)), el("span", { class: "keys" }, label.slice(i)));
  }

  // ---- toolbar ----
  function toolbar() {
    const box = document.getElementById("variants");
    for (const v of R.variants) {
      const cb = el("input", { type: "checkbox", checked: state.shown.has(v.label) });
      const chip = el("label", { class: "chip" + (cb.checked ? "" : " off"), "data-variant": v.label },
                      cb, el("span", { class: "sw", style: "background:" + v.color }), variantName(v.label));
      cb.addEventListener("change", () => {
        if (cb.checked) state.shown.add(v.label); else state.shown.delete(v.label);
        chip.classList.toggle("off", !cb.checked);
        history.replaceState(null, "", "#show=" + encodeURIComponent(labels.filter(l => state.shown.has(l)).join("|")));
        groups.forEach(g => g.applyShown());
      });
      box.append(chip);
    }
    const layer = document.getElementById("layer");
    for (let i = 0; i < R.layers; i++) layer.append(el("option", { value: String(i) }, "layer " + i));
    layer.closest("label").hidden = !R.layers;
    layer.addEventListener("change", () => { state.layer = +layer.value; groups.forEach(g => g.redraw()); });
    const legend = document.getElementById("legend");
    for (const r of REGIONS) legend.append(el("i", { "data-region": String(r.code), style: "background:" + r.color }), r.name + " ");
    legend.hidden = !REGIONS.length;
    const dim = document.getElementById("dim");
    for (const d of R.dims) dim.append(el("option", { value: d }, d.replace(/_/g, " ")));
    dim.closest("label").hidden = !R.dims.length;
    dim.addEventListener("change", () => { state.dim = dim.value; groups.forEach(g => g.redraw()); });
  }

  // ---- canvases ----
  // Size a canvas's backing store to `r` (its on-page box; off-screen canvases get their twin's).
  function sized(canvas, r = canvas.getBoundingClientRect()) {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(r.width * dpr)), h = Math.max(1, Math.round(r.height * dpr));
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return { ctx, w: r.width, h: r.height };
  }

  // Cache timeline of one tile and layer: x = generation time, y = held frame (as video time).
  function drawTimeline(tile, canvas, rect, seconds) {
    const { ctx, w, h } = sized(canvas, rect);
    ctx.clearRect(0, 0, w, h);
    ctx.fillStyle = "#fafbfc"; ctx.fillRect(0, 0, w, h);
    const tl = tile.data && tile.data.timeline;
    if (!tl) { label(ctx, "no cache timeline", w, h); return; }
    const layer = tl.layers[Math.min(state.layer, tl.layers.length - 1)];
    const spf = tl.spf, n = tl.chunk_start.length;
    const X = t => (t / seconds) * w, Y = t => h - (t / seconds) * h;
    const thick = Math.max(1, Math.min(3, h / (tl.max_frame + 1)));
    ctx.strokeStyle = "#d5d9df"; ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(0, h); ctx.lineTo(w, 0); ctx.stroke();
    for (const region of REGIONS) {                   // every region code present; empty (0) is never listed
      ctx.strokeStyle = region.color; ctx.lineWidth = thick; ctx.beginPath();
      for (let i = 0; i < layer.length; i += 4) {
        if (layer[i + 1] !== region.code) continue;
        const c0 = layer[i + 2], c1 = layer[i + 3];
        const x0 = tl.chunk_start[c0] * spf;
        const x1 = (c1 + 1 < n ? tl.chunk_start[c1 + 1] : tl.latent_frames) * spf;
        const y = Y((layer[i] + 0.5) * spf);
        ctx.moveTo(X(x0), y); ctx.lineTo(X(x1), y);
      }
      ctx.stroke();
    }
  }
  function label(ctx, text, w, h) {
    ctx.fillStyle = "#9ca3af"; ctx.font = "12px system-ui, sans-serif"; ctx.textAlign = "center";
    ctx.fillText(text, w / 2, h / 2);
  }
  function playhead(canvas, base, t, seconds, x0, x1) {
    const { ctx, w, h } = sized(canvas);
    ctx.clearRect(0, 0, w, h);
    ctx.drawImage(base, 0, 0, w, h);
    const a = x0 || 0, b = x1 == null ? w : x1;
    const x = a + (Math.min(t, seconds) / seconds) * (b - a);
    ctx.strokeStyle = "#111827"; ctx.lineWidth = 1.2;
    ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, h); ctx.stroke();
  }
  // What the cache holds at time t (the chunk that made the frame on screen).
  function holding(tile, t) {
    const tl = tile.data && tile.data.timeline;
    if (!tl) return "";
    let c = 0;
    while (c + 1 < tl.chunk_start.length && tl.chunk_start[c + 1] * tl.spf <= t) c++;
    const layer = tl.layers[Math.min(state.layer, tl.layers.length - 1)];
    const count = {};
    let lo = Infinity;
    for (let i = 0; i < layer.length; i += 4) {
      if (layer[i + 2] <= c && c <= layer[i + 3]) {
        count[layer[i + 1]] = (count[layer[i + 1]] || 0) + 1;
        if (layer[i + 1] === MEMORY) lo = Math.min(lo, layer[i]);
      }
    }
    let s = "cache: " + REGIONS.map(r => `${count[r.code] || 0} ${r.name}`).join(" · ");
    if (count[MEMORY]) s += ` (memory from ${fmt(lo * tl.spf)} s)`;
    return s;
  }

  // Quality per 2-s clip, one line per shown policy.
  function drawCurve(group, rect) {
    const { ctx, w, h } = sized(group.curveBase, rect);
    ctx.clearRect(0, 0, w, h);
    const L = 44, Rm = 26, T = 20, B = 22, seconds = group.g.seconds;
    const series = group.tiles.filter(t => state.shown.has(t.variant) && t.data && t.data.clips && t.data.clips[state.dim]);
    ctx.font = "12px system-ui, sans-serif"; ctx.fillStyle = "#374151"; ctx.textAlign = "left";
    ctx.fillText((state.dim || "quality").replace(/_/g, " ") + " per 2-s clip", L, 13);
    if (!series.length) { label(ctx, state.dim ? "no per-clip scores for the shown policies (unscored)" : "unscored", w, h); return; }
    let lo = Infinity, hi = -Infinity;
    for (const t of series) for (const v of t.data.clips[state.dim]) if (v != null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    if (!isFinite(lo)) { lo = 0; hi = 1; }
    const pad = Math.max(0.02, (hi - lo) * 0.1); lo -= pad; hi += pad;
    const X = s => L + (s / seconds) * (w - L - Rm), Y = v => T + (1 - (v - lo) / (hi - lo)) * (h - T - B);
    ctx.strokeStyle = "#e5e7eb"; ctx.lineWidth = 1; ctx.fillStyle = "#6b7280"; ctx.textAlign = "right";
    for (let i = 0; i <= 4; i++) {
      const v = lo + (hi - lo) * i / 4;
      ctx.beginPath(); ctx.moveTo(L, Y(v)); ctx.lineTo(w - Rm, Y(v)); ctx.stroke();
      ctx.fillText(v.toFixed(2), L - 6, Y(v) + 4);
    }
    ctx.textAlign = "center";
    for (let i = 0; i <= 4; i++) ctx.fillText(fmt(seconds * i / 4) + " s", X(seconds * i / 4), h - 6);
    // a step per clip: the value holds over the clip's seconds, so the playhead reads it directly
    for (const t of series) {
      const c = t.data.clips, ys = c[state.dim];
      ctx.strokeStyle = t.color; ctx.lineWidth = 1.8; ctx.beginPath();
      let pen = false;
      for (let i = 0; i < ys.length; i++) {
        if (ys[i] == null) { pen = false; continue; }
        const y = Y(ys[i]);
        if (pen) ctx.lineTo(X(c.start_s[i]), y); else ctx.moveTo(X(c.start_s[i]), y);
        ctx.lineTo(X(c.end_s[i]), y);
        pen = true;
      }
      ctx.stroke();
    }
    group.curveX = [L, w - Rm];
  }

  // ---- one comparison group: players kept in sync ----
  class Group {
    constructor(g, box) {
      this.g = g; this.box = box; this.rendered = false; this.tiles = [];
    }
    render(data) {
      const g = this.g;
      this.play = el("button", { type: "button", class: "play" }, "▶ Play");
      this.scrub = el("input", { type: "range", min: "0", max: String(g.seconds), step: "0.01", value: "0", class: "scrub" });
      this.time = el("span", { class: "time" }, `0.0 / ${fmt(g.seconds)} s`);
      this.speed = el("select", { class: "speed", title: "playback speed" },
                      ...[0.5, 1, 2, 4, 8].map(r => el("option", { value: String(r), selected: r === 1 }, r + "×")));
      const tilesBox = el("div", { class: "tiles" });
      for (const t of g.tiles) {
        const video = el("video", { src: t.video, poster: t.poster, preload: "none", muted: true,
                                    playsInline: true, controls: true, style: `--ar:${t.width}/${t.height}` });
        video.muted = true;
        const canvas = el("canvas", { class: "tl" });
        const now = el("div", { class: "now" });
        const node = el("div", { class: "tile", "data-variant": t.variant },
          el("div", { class: "name" }, el("span", { class: "sw", style: "background:" + t.color }), variantName(t.label),
             t.scored ? null : el("span", { class: "badge", title: "complete, no metrics.json" }, "unscored")),
          video, canvas, now);
        const tile = { ...t, node, video, canvas, now, data: data[t.label], base: document.createElement("canvas") };
        this.tiles.push(tile);
        tilesBox.append(node);
        this.bind(tile);
      }
      this.curve = el("canvas", { class: "curve" });
      this.curveBase = document.createElement("canvas");
      this.box.append(el("div", { class: "controls" }, this.play, this.scrub, this.time, this.speed), tilesBox, this.curve);
      this.play.addEventListener("click", () => this.toggle());
      this.scrub.addEventListener("input", () => this.seek(+this.scrub.value, null));
      this.speed.addEventListener("change", () => this.tiles.forEach(t => { t.video.playbackRate = +this.speed.value; }));
      this.rendered = true;
      this.box.classList.remove("pending");
      new ResizeObserver(() => this.redraw()).observe(tilesBox);
      this.applyShown();
    }
    active() { return this.tiles.filter(t => state.shown.has(t.variant)); }
    leader() { const a = this.active(); return a.find(t => !t.video.paused && !t.video.ended) || a[0]; }
    playing() { return this.active().some(t => !t.video.paused && !t.video.ended); }
    setTime(video, t) {
      const d = video.duration;
      t = isFinite(d) ? Math.min(t, Math.max(0, d - 0.01)) : t;
      if (Math.abs(video.currentTime - t) < 1e-3) return;
      video._expect = t;
      video.currentTime = t;
    }
    bind(tile) {
      const v = tile.video;
      v.addEventListener("play", () => {
        if (!state.shown.has(tile.variant)) return;
        for (const o of this.active()) if (o.video !== v && o.video.paused) {
          this.setTime(o.video, v.currentTime);
          o.video.play().catch(() => {});
        }
        this.loop();
      });
      v.addEventListener("pause", () => {
        if (v.ended || !state.shown.has(tile.variant)) return;
        for (const o of this.active()) if (o.video !== v && !o.video.paused) o.video.pause();
        this.update();
      });
      v.addEventListener("seeking", () => {
        const mine = v._expect != null && Math.abs(v.currentTime - v._expect) < 0.02;
        v._expect = null;
        if (!mine && state.shown.has(tile.variant)) this.seek(v.currentTime, v);
      });
      v.addEventListener("seeked", () => this.update());
    }
    toggle() {
      if (this.playing()) { this.active().forEach(t => t.video.pause()); return; }
      const lead = this.leader();
      if (lead && lead.video.ended) this.seek(0, null);
      const t0 = lead ? lead.video.currentTime : 0;
      for (const t of this.active()) { this.setTime(t.video, t0); t.video.play().catch(() => {}); }
      this.loop();
    }
    seek(t, from) {
      for (const o of this.active()) if (o.video !== from) this.setTime(o.video, t);
      this.update(t);
    }
    loop() {
      if (this.looping) return;
      this.looping = true;
      const step = () => {
        this.update();
        const lead = this.leader();
        if (lead && this.playing()) {
          const t = lead.video.currentTime;
          for (const o of this.active()) {
            if (o !== lead && !o.video.seeking && !o.video.ended && Math.abs(o.video.currentTime - t) > DRIFT_S) this.setTime(o.video, t);
          }
          requestAnimationFrame(step);
        } else { this.looping = false; this.update(); }
      };
      requestAnimationFrame(step);
    }
    update(t) {
      if (!this.rendered) return;
      const lead = this.leader();
      t = t != null ? t : (lead ? lead.video.currentTime : 0);
      const seconds = this.g.seconds;
      this.scrub.value = String(t);
      this.time.textContent = `${fmt(t)} / ${fmt(seconds)} s`;
      this.play.textContent = this.playing() ? "❚❚ Pause" : "▶ Play";
      for (const tile of this.active()) {
        playhead(tile.canvas, tile.base, t, seconds);
        const s = holding(tile, t);
        if (tile.now.textContent !== s) tile.now.textContent = s;
      }
      if (this.curveX) playhead(this.curve, this.curveBase, t, seconds, this.curveX[0], this.curveX[1]);
      else playhead(this.curve, this.curveBase, -1, seconds);
    }
    redraw() {
      if (!this.rendered) return;
      for (const tile of this.active()) drawTimeline(tile, tile.base, tile.canvas.getBoundingClientRect(), this.g.seconds);
      this.curveX = null;
      drawCurve(this, this.curve.getBoundingClientRect());
      this.update();
    }
    applyShown() {
      if (!this.rendered) return;
      const lead = this.active().find(t => !t.video.paused) || null;
      for (const t of this.tiles) {
        const on = state.shown.has(t.variant);
        t.node.hidden = !on;
        if (!on && !t.video.paused) t.video.pause();
      }
      if (lead) for (const t of this.active()) {
        if (t.video.paused) { this.setTime(t.video, lead.video.currentTime); t.video.play().catch(() => {}); }
      }
      this.redraw();
    }
  }
  // ---- page ----
  function main() {
    toolbar();
    const box = document.getElementById("groups");
    if (!R.groups.length) box.append(el("p", { class: "empty" }, "No complete runs with videos."));
    const io = new IntersectionObserver(entries => {
      for (const e of entries) {
        if (!e.isIntersecting) continue;
        const group = e.target._group;
        io.unobserve(e.target);
        loadData(group.g.id, data => group.render(data));
      }
    }, { rootMargin: "600px 0px" });
    for (const g of R.groups) {
      const missing = g.missing.length ? el("div", { class: "missing" }, "Not shown (no complete video): " +
        g.missing.map(m => `${m.preset || "?"} — ${m.status}${m.reason ? ": " + m.reason : ""}`).join("; ")) : null;
      const meta = [g.backbone, g.horizon, g.seed != null ? "seed " + g.seed : null, g.tiles.length + " runs"].filter(Boolean).join(" · ");
      const section = el("div", { class: "group pending", id: g.id }, el("h3", {}, g.prompt || "(no prompt)"),
                         el("div", { class: "meta" }, meta), missing);
      const group = new Group(g, section);
      section._group = group;
      groups.push(group);
      box.append(section);
      io.observe(section);
    }
  }
  main();
})();
