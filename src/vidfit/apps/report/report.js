// vidfit report: draws the timelines of one page of videos on canvases at screen resolution, and plays the
// videos beside them. All data comes from the JSON in #report-data; nothing is fetched.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const list = document.getElementById("video-list");
  const LANE = 16, GAP = 6, AXIS = 16, TOP = 2;
  const state = { page: 0, filter: "", order: "worst" };
  const tooltip = document.getElementById("tooltip");
  const rows = [];  // the strips on screen: {video, canvas, lanes, players}

  // A lane travels as [gap, length, class, alpha] per run (`encode_lane`); decoded once, into typed arrays.
  function decode(values, origin) {
    const n = values.length / 4, starts = new Float64Array(n), stops = new Float64Array(n);
    const labels = new Int32Array(n), alphas = new Float32Array(n);
    let at = origin;
    for (let i = 0; i < n; i++) {
      starts[i] = at + values[4 * i];
      stops[i] = starts[i] + values[4 * i + 1];
      labels[i] = values[4 * i + 2];
      alphas[i] = values[4 * i + 3] / 100;
      at = stops[i];
    }
    return { starts, stops, labels, alphas, n };
  }

  // The player's clock: seconds of a frame, and the frame at a time, from the boundaries the segments give.
  function seconds(video, frame) {
    const c = video.clock;
    return c ? c[1] + (frame - c[0]) * (c[3] - c[1]) / (c[2] - c[0]) : null;
  }
  function frameAt(video, time) {
    const c = video.clock;
    return c ? c[0] + (time - c[1]) * (c[2] - c[0]) / (c[3] - c[1]) : null;
  }

  function visible() {
    let videos = data.videos;
    if (state.filter) videos = videos.filter((v) => v.id.toLowerCase().includes(state.filter));
    if (state.order === "id") videos = videos.slice().sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return videos;
  }

  function render() {
    const videos = visible();
    const pages = Math.max(1, Math.ceil(videos.length / data.pageSize));
    state.page = Math.min(state.page, pages - 1);
    for (const row of rows) for (const p of row.players) { p.pause(); p.removeAttribute("src"); p.load(); }
    rows.length = 0;
    list.textContent = "";
    const shown = videos.slice(state.page * data.pageSize, (state.page + 1) * data.pageSize);
    for (const video of shown) list.appendChild(strip(video));
    for (const el of document.querySelectorAll(".page-label")) {
      el.textContent = `page ${state.page + 1} of ${pages} (${videos.length} videos)`;
    }
    for (const el of document.querySelectorAll("button.prev")) el.disabled = state.page === 0;
    for (const el of document.querySelectorAll("button.next")) el.disabled = state.page >= pages - 1;
    redraw();
  }

  // Sizes are read for every strip before any is drawn: a read after a canvas changed would lay the page out again.
  function redraw() {
    for (const row of rows) row.size = [row.canvas.clientWidth, row.canvas.clientHeight];
    rows.forEach(draw);
  }

  function text(tag, className, content) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    if (content !== undefined) el.textContent = content;
    return el;
  }

  function strip(video) {
    const box = text("div", "video");
    box.dataset.id = video.id;
    const head = text("div", "head");
    head.appendChild(text("span", "id", video.id));
    const facts = [];
    if (video.label.length) facts.push(`true: ${video.label.join(", ")}`);
    if (video.predicted.length) facts.push(`predicted: ${video.predicted.join(", ")}`);
    facts.push(`frames ${video.frames[0]}–${video.frames[1]}`);
    if (video.f1 !== undefined) facts.push(`F1@0.5 ${video.f1.toFixed(2)}`);
    if (video.resampled) facts.push("drawn at screen resolution");
    if (video.error !== undefined) {
      const wrong = text("span", video.error > 0 ? "bad" : "facts", `${(100 * video.error).toFixed(1)}% wrong`);
      head.appendChild(wrong);
    }
    head.appendChild(text("span", "facts", facts.join(" · ")));
    box.appendChild(head);
    const lanes = {
      true: video.true.map((l) => decode(l, video.frames[0])),
      pred: video.pred.map((l) => decode(l, video.frames[0])),
    };
    const area = text("div", "strip");
    const names = text("div", "names");
    names.appendChild(text("div", "", "")).style.height = `${TOP}px`;
    lanes.true.forEach((_, i) => names.appendChild(text("div", "", i ? "" : "true")));
    names.appendChild(text("div", "", "")).style.height = `${GAP}px`;
    lanes.pred.forEach((_, i) => names.appendChild(text("div", "", i ? "" : "pred")));
    const canvas = document.createElement("canvas");
    canvas.className = "timeline";
    canvas.style.height = `${TOP + (lanes.true.length + lanes.pred.length) * LANE + GAP + AXIS}px`;
    area.appendChild(names);
    area.appendChild(canvas);
    box.appendChild(area);
    const row = { video, canvas, lanes, players: [], size: [0, 0] };
    box.appendChild(players(video, row));
    canvas.addEventListener("click", (event) => seekAt(row, event));
    canvas.addEventListener("mousemove", (event) => hover(row, event));
    canvas.addEventListener("mouseleave", () => { tooltip.hidden = true; });
    rows.push(row);
    return box;
  }

  // One player per view, side by side; the first drives the others so that they show the same moment.
  function players(video, row) {
    const box = text("div", "players");
    if (!video.views) return box;
    for (const [view, url] of Object.entries(video.views)) {
      const figure = document.createElement("figure");
      const player = document.createElement("video");
      player.preload = "metadata";
      player.muted = true;
      player.playsInline = true;
      player.dataset.view = view;
      if (!row.players.length) player.controls = true;
      player.addEventListener("error", () => {
        const reason = player.error ? player.error.message || `media error ${player.error.code}` : "unknown error";
        figure.appendChild(text("div", "unplayable", `cannot play ${url} in this browser (${reason})`));
      });
      player.src = url;
      figure.appendChild(player);
      figure.appendChild(text("figcaption", "", view));
      box.appendChild(figure);
      row.players.push(player);
    }
    const [lead, ...rest] = row.players;
    lead.addEventListener("play", () => rest.forEach((p) => p.play().catch(() => {})));
    lead.addEventListener("pause", () => rest.forEach((p) => { p.pause(); p.currentTime = lead.currentTime; }));
    lead.addEventListener("ratechange", () => rest.forEach((p) => { p.playbackRate = lead.playbackRate; }));
    const follow = () => {
      for (const p of rest) if (Math.abs(p.currentTime - lead.currentTime) > 0.05) p.currentTime = lead.currentTime;
      draw(row);
    };
    lead.addEventListener("seeked", follow);
    lead.addEventListener("timeupdate", follow);
    return box;
  }

  function layout(row) {
    const [width, height] = row.size;
    const [start, stop] = row.video.frames;
    return { width, height, start, span: Math.max(stop - start, 1) };
  }

  function draw(row) {
    const ratio = window.devicePixelRatio || 1, box = layout(row), canvas = row.canvas;
    canvas.width = Math.round(box.width * ratio);
    canvas.height = Math.round(box.height * ratio);
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, box.width, box.height);
    const scale = box.width / box.span;
    let y = TOP;
    for (const [kind, lanes] of [["true", row.lanes.true], ["pred", row.lanes.pred]]) {
      for (const lane of lanes) {
        g.fillStyle = "#f3f4f6";
        g.fillRect(0, y, box.width, LANE - 2);
        for (let i = 0; i < lane.n; i++) {
          const x0 = (lane.starts[i] - box.start) * scale, x1 = (lane.stops[i] - box.start) * scale;
          g.globalAlpha = kind === "true" ? 1 : 0.2 + 0.8 * lane.alphas[i];
          g.fillStyle = data.colours[lane.labels[i]];
          g.fillRect(x0, y, Math.max(x1 - x0, 1), LANE - 2);
        }
        g.globalAlpha = 1;
        y += LANE;
      }
      if (kind === "true") y += GAP;
    }
    axis(g, row, box, y);
    const lead = row.players[0];
    const frame = lead && lead.readyState > 0 ? frameAt(row.video, lead.currentTime) : null;
    if (frame !== null) {
      const x = (frame - box.start) * scale;
      g.fillStyle = "#cf222e";
      g.fillRect(Math.round(x) - 1, 0, 2, y);
    }
  }

  function axis(g, row, box, y) {
    g.fillStyle = "#656d76";
    g.font = "10px system-ui, sans-serif";
    const ticks = 6;
    for (let k = 0; k <= ticks; k++) {
      const frame = box.start + (box.span * k) / ticks, x = (box.width * k) / ticks;
      const time = seconds(row.video, frame);
      const label = time === null ? `${Math.round(frame)}` : `${time.toFixed(time < 100 ? 1 : 0)}s`;
      g.textAlign = k === 0 ? "left" : k === ticks ? "right" : "center";
      g.fillRect(Math.min(x, box.width - 1), y, 1, 3);
      g.fillText(label, x, y + 12);
    }
  }

  // What is under the pointer: the lane, the run (if any) and the frame.
  function hit(row, event) {
    const rect = row.canvas.getBoundingClientRect(), box = layout(row);
    const frame = box.start + ((event.clientX - rect.left) / box.width) * box.span;
    let y = event.clientY - rect.top - TOP;
    let lane = null, kind = null;
    for (const [name, lanes] of [["true", row.lanes.true], ["pred", row.lanes.pred]]) {
      if (y >= 0 && y < lanes.length * LANE) { lane = lanes[Math.floor(y / LANE)]; kind = name; break; }
      y -= lanes.length * LANE + (name === "true" ? GAP : 0);
    }
    let run = -1;
    if (lane) {
      let low = 0, high = lane.n - 1;
      while (low <= high) {
        const mid = (low + high) >> 1;
        if (lane.starts[mid] <= frame) { run = mid; low = mid + 1; } else high = mid - 1;
      }
      if (run >= 0 && frame >= lane.stops[run]) run = -1;
    }
    return { frame, lane, kind, run };
  }

  function seekAt(row, event) {
    const found = hit(row, event);
    const frame = found.run >= 0 ? found.lane.starts[found.run] : found.frame;
    const time = seconds(row.video, frame);
    if (time === null || !row.players.length) return;
    for (const p of row.players) p.currentTime = Math.max(time, 0);
    draw(row);
  }

  function hover(row, event) {
    const found = hit(row, event);
    const time = seconds(row.video, found.frame);
    let line = `frame ${Math.floor(found.frame)}` + (time === null ? "" : ` · ${time.toFixed(2)}s`);
    if (found.run >= 0) {
      const lane = found.lane, i = found.run;
      line = `${found.kind === "true" ? "true" : "predicted"}: ${data.classes[lane.labels[i]]} · frames ` +
        `${lane.starts[i]}–${lane.stops[i]}` + (found.kind === "pred" ? ` · confidence ${lane.alphas[i].toFixed(2)}` : "") +
        ` · ${line}`;
    }
    tooltip.textContent = line;
    tooltip.style.left = `${event.clientX + 12}px`;
    tooltip.style.top = `${event.clientY + 12}px`;
    tooltip.hidden = false;
  }

  for (const el of document.querySelectorAll("button.prev")) el.addEventListener("click", () => { state.page--; render(); });
  for (const el of document.querySelectorAll("button.next")) el.addEventListener("click", () => { state.page++; render(); });
  const filter = document.getElementById("video-filter");
  if (filter) filter.addEventListener("input", () => { state.filter = filter.value.trim().toLowerCase(); state.page = 0; render(); });
  const order = document.getElementById("video-order");
  if (order) order.addEventListener("change", () => { state.order = order.value; render(); });
  let resizing = 0;
  window.addEventListener("resize", () => { cancelAnimationFrame(resizing); resizing = requestAnimationFrame(redraw); });
  if (list) render();
  window.vidfitReport = { lane: LANE, gap: GAP, top: TOP, rows };  // for tools that check the drawing
  window.reportReady = performance.now();
  document.body.dataset.ready = "1";
})();
