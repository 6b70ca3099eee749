// The page: reads the public API of this origin only and draws tomorrow's PM2.5 for people.
"use strict";

const GRADES = [ // Korean PM2.5 grades on whole ug/m3 (upper bounds inclusive), as the API's
  { key: "good", max: 15, colour: "#2f80ed" },
  { key: "moderate", max: 35, colour: "#27ae60" },
  { key: "bad", max: 75, colour: "#f2a93b" },
  { key: "very_bad", max: Infinity, colour: "#e04848" },
];
// Continuous ramp (ug/m3 -> colour), light to dark; the grade bounds are marked on the legend.
const RAMP = [[0, "#eef7ff"], [10, "#a8d5f5"], [20, "#5fb3d9"], [35, "#7cc576"],
  [50, "#f5d547"], [75, "#f08a3c"], [110, "#d7263d"], [150, "#7a1f5c"], [250, "#3a0d3a"]];

const TEXT = {
  ko: {
    title: "내일의 초미세먼지(PM2.5) 예보", date: "날짜", map: "지도", daily_mean: "일평균",
    colours: "색", grades_opt: "등급", continuous_opt: "연속",
    map_hint: "측정소에 마우스를 올리면 24시간 예보가, 지도를 누르면 그 지점의 예보가 나옵니다.",
    find_station: "측정소 찾기", search_ph: "이름, 로마자 또는 코드 (예: 중구, junggu, 111121)",
    nothing_selected: "측정소를 고르거나 지도를 누르세요.", downloads: "내려받기",
    run_status: "예보 실행 현황 (최근 14일)", verification: "검증: 모델 대 CMAQ·지속성 (최근 30일)",
    api_docs: "API 문서",
    footer: "격자 9 km (59 × 68), 시각은 모두 한국표준시(KST). 자료: CMAQ·WRF, ConvLSTM 보정.",
    lang_button: "English", good: "좋음", moderate: "보통", bad: "나쁨", very_bad: "매우나쁨",
    advice_good: "공기가 깨끗합니다. 야외 활동을 즐기세요.",
    advice_moderate: "대부분 괜찮습니다. 몸이 예민한 분은 오래 힘든 야외 활동을 할 때 몸 상태를 살피세요.",
    advice_bad: "어린이, 노인, 심장·폐 질환이 있는 분은 오래 힘든 야외 활동을 줄이세요. 다른 분도 오래 무리한 활동은 줄이고, 밖에서는 KF80 이상 마스크를 쓰세요.",
    advice_very_bad: "모두 야외 활동을 피하세요. 민감한 분은 실내에 머무르세요. 창문을 닫고, 꼭 나가야 하면 KF94 마스크를 쓰세요.",
    ug: "㎍/㎥", mean_of_day: "하루 평균", hour_kst: "시 (KST)", station: "측정소",
    point: "지점", bilinear: "이웃한 격자 4칸에서 쌍선형 보간", cells_used: "쓴 격자",
    weight: "가중치", loading: "불러오는 중…", no_forecast: "발행된 예보가 없습니다.",
    synthetic: "합성(SYNTHETIC) 자료로 학습한 모델의 예보입니다: 실제 대기질 예보가 아닙니다.",
    fallback: "모델이 돌지 못해 CMAQ 자체 예보를 실었습니다.",
    run_line: "실행 {run} · 모델 {model} · 발행 {at}", no_verification: "아직 검증 자료가 없습니다 (no verification yet).",
    st_date: "대상일", st_state: "상태", st_attempts: "시도", st_published: "발행 (KST)",
    st_model: "모델", st_synthetic: "합성 자료 학습", yes: "예", no: "아니오",
    succeeded: "성공", failed: "실패", late: "지연", fallback_state: "대체(CMAQ)", none: "없음",
    running: "실행 중", pending: "대기", waiting_for_inputs: "입력 기다림",
    tomorrow_line: "내일({date}) 예보: {state}, 마감 {deadline}.", healthy: "정상", unhealthy: "점검 필요",
    scheduler_seen: "스케줄러 마지막 신호 {at}", earlier_runs: "그 이전에 발행된 예보", v_date: "날짜", v_model: "모델 RMSE", v_cmaq: "CMAQ RMSE",
    v_persist: "지속성 RMSE", v_skill: "CMAQ 대비 기술점수", v_peak: "고농도(≥75) RMSE 모델 / CMAQ", v_better: "모델이 나음", v_worse: "모델이 못함",
    v_summary: "최근 {n}일: CMAQ 대비 기술점수 {skill}, 모델이 CMAQ보다 못한 날 {worse}일",
    dl_netcdf: "격자 전체 netCDF (24시간)", dl_csv: "모든 측정소 CSV (엑셀용, UTF-8 BOM)",
    dl_json: "격자 JSON", dl_stations_json: "측정소 JSON", dl_png: "지도 PNG (이 시각)",
    outside: "이 지점은 예보 격자 밖입니다.", value_here: "이 칸",
    no_match: "맞는 측정소가 없습니다.", out_of_grid: "격자 밖",
  },
  en: {
    title: "Tomorrow's PM2.5 forecast", date: "Date", map: "Map", daily_mean: "Daily mean",
    colours: "Colours", grades_opt: "grades", continuous_opt: "continuous",
    map_hint: "Hover over a station for its 24 hours; click anywhere for the forecast at that point.",
    find_station: "Find a station", search_ph: "Name, romanised name or code (e.g. 중구, junggu, 111121)",
    nothing_selected: "Choose a station or click the map.", downloads: "Downloads",
    run_status: "Forecast runs (last 14 days)", verification: "Verification: model against CMAQ and persistence (last 30 days)",
    api_docs: "API documentation",
    footer: "9 km grid (59 × 68); all times are Korea Standard Time (KST). From CMAQ and WRF, corrected by a ConvLSTM.",
    lang_button: "한국어", good: "Good", moderate: "Moderate", bad: "Bad", very_bad: "Very bad",
    advice_good: "The air is clean. Enjoy being outdoors.",
    advice_moderate: "Fine for most people. If you are sensitive, notice how you feel during long, hard exercise outdoors.",
    advice_bad: "Children, older people and anyone with heart or lung disease should cut down long or hard outdoor activity. Others should limit it too, and wear a KF80 (or better) mask outside.",
    advice_very_bad: "Everyone should avoid outdoor activity; sensitive people should stay indoors. Keep windows shut and wear a KF94 mask if you must go out.",
    ug: "µg/m³", mean_of_day: "daily mean", hour_kst: "hour (KST)", station: "Station",
    point: "Point", bilinear: "bilinear from the 4 surrounding cells", cells_used: "cells used",
    weight: "weight", loading: "Loading…", no_forecast: "No forecast has been published.",
    synthetic: "The model behind this forecast was trained on SYNTHETIC data: this is not a real air-quality forecast.",
    fallback: "The model could not run: this is CMAQ's own forecast.",
    run_line: "run {run} · model {model} · published {at}", no_verification: "No verification yet.",
    st_date: "Target date", st_state: "State", st_attempts: "Attempts", st_published: "Published (KST)",
    st_model: "Model", st_synthetic: "Trained on synthetic data", yes: "yes", no: "no",
    succeeded: "succeeded", failed: "failed", late: "late", fallback_state: "fallback (CMAQ)", none: "none",
    running: "running", pending: "pending", waiting_for_inputs: "waiting for inputs",
    tomorrow_line: "Tomorrow ({date}): {state}; deadline {deadline}.", healthy: "healthy", unhealthy: "needs attention",
    scheduler_seen: "scheduler last seen {at}", earlier_runs: "Earlier forecasts", v_date: "Date", v_model: "Model RMSE", v_cmaq: "CMAQ RMSE",
    v_persist: "Persistence RMSE", v_skill: "Skill vs CMAQ", v_peak: "RMSE where ≥ 75: model / CMAQ", v_better: "model better", v_worse: "model worse",
    v_summary: "Last {n} days: skill against CMAQ {skill}; days the model was worse than CMAQ: {worse}",
    dl_netcdf: "Whole grid, netCDF (24 hours)", dl_csv: "All stations, CSV (opens in Excel; UTF-8 with BOM)",
    dl_json: "Grid JSON", dl_stations_json: "Stations JSON", dl_png: "Map PNG (this hour)",
    outside: "This point is outside the forecast grid.", value_here: "this cell",
    no_match: "No station matches.", out_of_grid: "outside the grid",
  },
};

const S = {
  lang: (localStorage.getItem("pm25-lang") || (navigator.language || "ko")).startsWith("ko") ? "ko" : "en",
  geo: null, grid: null, stations: null, byCode: new Map(), date: null, run: null,
  hour: 8, mean: false, mode: "grades", playing: null, selection: null, status: null,
  runs: null, verification: null, meanField: null, started: performance.now(),
};
window.pm25 = S; // for the browser test and for the curious

const $ = (id) => document.getElementById(id);
const t = (key, vars) => {
  let s = TEXT[S.lang][key] ?? TEXT.en[key] ?? key;
  for (const [k, v] of Object.entries(vars || {})) s = s.replace(`{${k}}`, v);
  return s;
};
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const pad = (h) => String(h).padStart(2, "0");

// A grade's name in the chosen language; English keeps the Korean name beside it.
const gradeName = (key) => (S.lang === "en" ? `${TEXT.en[key]} (${TEXT.ko[key]})` : TEXT.ko[key]);

function gradeOf(v) {
  const r = Math.round(v);
  return GRADES.find((g) => r <= g.max);
}
function hexRgb(h) { return [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16)); }
function rampColour(v) {
  if (v <= RAMP[0][0]) return hexRgb(RAMP[0][1]);
  for (let i = 1; i < RAMP.length; i++) {
    if (v <= RAMP[i][0]) {
      const [a, ca] = RAMP[i - 1], [b, cb] = RAMP[i];
      const f = (v - a) / (b - a), x = hexRgb(ca), y = hexRgb(cb);
      return x.map((c, k) => Math.round(c + f * (y[k] - c)));
    }
  }
  return hexRgb(RAMP[RAMP.length - 1][1]);
}
function colourOf(v) { return S.mode === "grades" ? hexRgb(gradeOf(v).colour) : rampColour(v); }
function rgb(c) { return `rgb(${c[0]},${c[1]},${c[2]})`; }
// ISO 8601 with +09:00 -> "YYYY-MM-DD HH:MM KST", without trusting the browser's time zone.
function kst(iso) {
  if (!iso) return "–";
  if (iso.endsWith("+09:00")) return iso.slice(0, 16).replace("T", " ") + " KST";
  const d = new Date(new Date(iso).getTime() + 9 * 3600e3);
  return d.toISOString().slice(0, 16).replace("T", " ") + " KST";
}

async function getJSON(url) {
  const r = await fetch(url);
  if (!r.ok) {
    const err = new Error(`${url}: ${r.status}`);
    err.status = r.status;
    try { err.body = await r.json(); } catch (_) { /* not JSON */ }
    throw err;
  }
  return r.json();
}

// ---- projection: Lambert conformal conic on a sphere (Snyder 1987, eq. 15-1 .. 15-11) ----
function lcc(g) {
  const rad = Math.PI / 180, [p1, p2] = g.standard_parallels.map((v) => v * rad);
  const p0 = g.origin_latitude * rad, l0 = g.central_meridian * rad, R = g.earth_radius_m;
  const tq = (p) => Math.tan(Math.PI / 4 + p / 2);
  const n = Math.abs(p1 - p2) < 1e-10 ? Math.sin(p1)
    : Math.log(Math.cos(p1) / Math.cos(p2)) / Math.log(tq(p2) / tq(p1));
  const F = (Math.cos(p1) * Math.pow(tq(p1), n)) / n, rho0 = (R * F) / Math.pow(tq(p0), n);
  return {
    // grid units (cells from the south-west corner) -> [lat, lon]
    inverse(gx, gy) {
      const x = g.xorig_m + gx * g.cell_size_m, y = g.yorig_m + gy * g.cell_size_m;
      const rho = Math.sign(n) * Math.hypot(x, rho0 - y);
      const theta = Math.atan2(Math.sign(n) * x, Math.sign(n) * (rho0 - y));
      const lat = 2 * Math.atan(Math.pow((R * F) / rho, 1 / n)) - Math.PI / 2;
      return [lat / rad, (theta / n + l0) / rad];
    },
  };
}

// ---- the map ----
const MAP = { left: 34, top: 8, right: 8, bottom: 26, cell: 9 };
function mapSize() {
  return [MAP.left + S.grid.ncols * MAP.cell + MAP.right, MAP.top + S.grid.nrows * MAP.cell + MAP.bottom];
}
const toPx = (gx, gy) => [MAP.left + gx * MAP.cell, MAP.top + (S.grid.nrows - gy) * MAP.cell];
const toGrid = (px, py) => [(px - MAP.left) / MAP.cell, S.grid.nrows - (py - MAP.top) / MAP.cell];

function currentField() {
  return S.mean ? S.meanField : S.values[S.hour];
}

function drawMap() {
  const canvas = $("map"), [w, h] = mapSize(), dpr = window.devicePixelRatio || 1;
  if (canvas.width !== w * dpr) { canvas.width = w * dpr; canvas.height = h * dpr; }
  canvas.style.aspectRatio = `${w} / ${h}`;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const { nrows, ncols } = S.grid, field = currentField();
  // the field: one pixel a cell, scaled up without smoothing (each cell stays a square)
  const off = document.createElement("canvas");
  off.width = ncols; off.height = nrows;
  const octx = off.getContext("2d"), img = octx.createImageData(ncols, nrows);
  for (let r = 0; r < nrows; r++) {
    for (let c = 0; c < ncols; c++) {
      const rgbv = colourOf(field[r][c]), i = ((nrows - 1 - r) * ncols + c) * 4;
      img.data[i] = rgbv[0]; img.data[i + 1] = rgbv[1]; img.data[i + 2] = rgbv[2]; img.data[i + 3] = 255;
    }
  }
  octx.putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(off, MAP.left, MAP.top, ncols * MAP.cell, nrows * MAP.cell);
  ctx.save();
  ctx.beginPath();
  ctx.rect(MAP.left, MAP.top, ncols * MAP.cell, nrows * MAP.cell);
  ctx.clip();
  // graticule, then coastline
  ctx.strokeStyle = "rgba(20,30,50,.28)"; ctx.lineWidth = 0.7;
  for (const line of S.geo.graticule) strokeLine(ctx, line.points);
  ctx.strokeStyle = "#1b2230"; ctx.lineWidth = 1.1;
  strokeLine(ctx, S.geo.coastline);
  // stations, coloured by their own value
  const sv = stationValues();
  for (const st of S.geo.stations) {
    if (!st.in_grid) continue;
    const [x, y] = toPx(st.x, st.y), v = sv.get(st.key);
    ctx.beginPath(); ctx.arc(x, y, 2.6, 0, 2 * Math.PI);
    ctx.fillStyle = v == null ? "#888" : rgb(colourOf(v));
    ctx.fill(); ctx.lineWidth = 0.8; ctx.strokeStyle = "#10233f"; ctx.stroke();
  }
  const sel = S.selection;
  if (sel) {
    const [x, y] = toPx(sel.gx, sel.gy);
    ctx.lineWidth = 2.2; ctx.strokeStyle = "#000";
    ctx.beginPath(); ctx.arc(x, y, 7, 0, 2 * Math.PI); ctx.stroke();
    ctx.lineWidth = 1.2; ctx.strokeStyle = "#fff";
    ctx.beginPath(); ctx.arc(x, y, 8.5, 0, 2 * Math.PI); ctx.stroke();
  }
  ctx.restore();
  ctx.strokeStyle = "#10233f"; ctx.lineWidth = 1;
  ctx.strokeRect(MAP.left, MAP.top, ncols * MAP.cell, nrows * MAP.cell);
  drawGraticuleLabels(ctx);
  canvas.dataset.hour = S.mean ? "mean" : String(S.hour);
  canvas.dataset.date = S.date;
  canvas.dataset.mode = S.mode;
}

function strokeLine(ctx, pts) {
  ctx.beginPath();
  let pen = false;
  for (const p of pts) {
    if (p === null) { pen = false; continue; }
    const [x, y] = toPx(p[0], p[1]);
    if (pen) ctx.lineTo(x, y); else { ctx.moveTo(x, y); pen = true; }
  }
  ctx.stroke();
}

function crossing(pts, axis, at) { // where a polyline crosses x=at (axis 0) or y=at (axis 1)
  for (let i = 1; i < pts.length; i++) {
    const a = pts[i - 1], b = pts[i];
    if (!a || !b) continue;
    if ((a[axis] - at) * (b[axis] - at) <= 0 && a[axis] !== b[axis]) {
      const f = (at - a[axis]) / (b[axis] - a[axis]);
      return [a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1])];
    }
  }
  return null;
}

function drawGraticuleLabels(ctx) {
  ctx.fillStyle = "#3a4356"; ctx.font = "11px system-ui, sans-serif";
  const { nrows, ncols } = S.grid;
  for (const line of S.geo.graticule) {
    if (line.kind === "lat") {
      const p = crossing(line.points, 0, 0);
      if (!p || p[1] < 0.5 || p[1] > nrows - 0.5) continue;
      const [, y] = toPx(0, p[1]);
      ctx.textAlign = "right"; ctx.textBaseline = "middle";
      ctx.fillText(`${line.value}°N`, MAP.left - 3, y);
    } else {
      const p = crossing(line.points, 1, 0);
      if (!p || p[0] < 0.5 || p[0] > ncols - 0.5) continue;
      const [x] = toPx(p[0], 0);
      ctx.textAlign = "center"; ctx.textBaseline = "top";
      ctx.fillText(`${line.value}°E`, x, MAP.top + nrows * MAP.cell + 4);
    }
  }
}

function stationValues() {
  const out = new Map();
  if (!S.stationRows) return out;
  for (const row of S.stationRows) {
    out.set(row.key, S.mean ? row.daily_mean : row.values[S.hour]);
  }
  return out;
}

function drawLegend() {
  const el = $("legend"), u = t("ug");
  if (S.mode === "grades") {
    const ranges = ["0–15", "16–35", "36–75", "≥ 76"];
    el.innerHTML = GRADES.map((g, i) =>
      `<span><span class="swatch" style="background:${g.colour}"></span>${esc(gradeName(g.key))} ${ranges[i]} ${u}</span>`
    ).join("");
  } else {
    const max = 150, stops = RAMP.filter(([v]) => v <= max)
      .map(([v, c]) => `<stop offset="${(v / max) * 100}%" stop-color="${c}"/>`).join("");
    const ticks = [0, 15, 35, 75, 150].map((v) => {
      const x = 4 + (v / max) * 292;
      return `<line x1="${x}" x2="${x}" y1="4" y2="22" stroke="#10233f"/>` +
        `<text x="${x}" y="34" font-size="11" text-anchor="middle">${v}${v === 150 ? "+" : ""}</text>`;
    }).join("");
    el.innerHTML = `<svg class="ramp" viewBox="0 0 350 38" role="img" aria-label="colour bar">` +
      `<defs><linearGradient id="rg">${stops}</linearGradient></defs>` +
      `<rect x="4" y="6" width="292" height="14" fill="url(#rg)" stroke="#999"/>${ticks}` +
      `<text x="304" y="18" font-size="11">${u}</text></svg>`;
  }
}

function setHourLabel() {
  $("hour-label").value = S.mean ? t("daily_mean") : `${pad(S.hour)}:00 KST`;
  $("map-when").textContent = `· ${S.date} ${S.mean ? t("daily_mean") : pad(S.hour) + ":00 KST"}`;
  $("hour").disabled = S.mean;
}

function redraw() {
  setHourLabel();
  drawMap();
  drawLegend();
  renderDownloads();
  if (S.selection) renderSelection();
}

// ---- hover and click ----
function eventGrid(ev) {
  const canvas = $("map"), rect = canvas.getBoundingClientRect(), [w, h] = mapSize();
  const px = ((ev.clientX - rect.left) / rect.width) * w, py = ((ev.clientY - rect.top) / rect.height) * h;
  return { px, py, g: toGrid(px, py), scale: rect.width / w };
}

function nearestStation(px, py, radius) {
  let best = null, bestD = radius;
  for (const st of S.geo.stations) {
    if (!st.in_grid) continue;
    const [x, y] = toPx(st.x, st.y), d = Math.hypot(x - px, y - py);
    if (d < bestD) { bestD = d; best = st; }
  }
  return best;
}

function inGrid(g) { return g[0] >= 0 && g[1] >= 0 && g[0] < S.grid.ncols && g[1] < S.grid.nrows; }

function onHover(ev) {
  const { px, py, g, scale } = eventGrid(ev), tip = $("tooltip");
  if (!inGrid(g)) { tip.hidden = true; return; }
  const st = nearestStation(px, py, 7 / Math.max(scale, 0.5));
  let html;
  if (st && S.stationByKey.get(st.key)) {
    const row = S.stationByKey.get(st.key), v = S.mean ? row.daily_mean : row.values[S.hour];
    html = `<b>${esc(st.name)}</b> <small>${esc(st.sido)} ${esc(st.code || "")}</small><br>` +
      `${v.toFixed(1)} ${t("ug")} · ${esc(gradeName(gradeOf(v).key))}` + sparkline(row.values, 220, 46);
  } else {
    const c = Math.min(Math.floor(g[0]), S.grid.ncols - 1), r = Math.min(Math.floor(g[1]), S.grid.nrows - 1);
    const v = currentField()[r][c], [lat, lon] = S.proj.inverse(g[0], g[1]);
    html = `${lat.toFixed(3)}°N ${lon.toFixed(3)}°E<br>${t("value_here")}: ${v.toFixed(1)} ${t("ug")} · ${esc(gradeName(gradeOf(v).key))}`;
  }
  tip.innerHTML = html;
  tip.hidden = false;
  const wrap = $("map").parentElement.getBoundingClientRect();
  let left = ev.clientX - wrap.left + 14;
  if (left + 240 > wrap.width) left = ev.clientX - wrap.left - 250;
  tip.style.left = `${left}px`;
  tip.style.top = `${ev.clientY - wrap.top + 14}px`;
}

function onClick(ev) {
  const { px, py, g, scale } = eventGrid(ev);
  if (!inGrid(g)) return;
  const st = nearestStation(px, py, 7 / Math.max(scale, 0.5));
  if (st) selectStation(st);
  else queryPoint(...S.proj.inverse(g[0], g[1]), g);
}

function sparkline(values, w, h) {
  const max = Math.max(40, ...values), bw = w / values.length;
  const bars = values.map((v, i) => {
    const bh = Math.max(1, (v / max) * (h - 4));
    return `<rect x="${(i * bw).toFixed(1)}" y="${(h - bh).toFixed(1)}" width="${(bw - 1).toFixed(1)}" height="${bh.toFixed(1)}" fill="${gradeOf(v).colour}"${i === S.hour && !S.mean ? ' stroke="#fff"' : ""}/>`;
  }).join("");
  return `<svg width="${w}" height="${h}" viewBox="0 0 ${w} ${h}">${bars}</svg>`;
}

// ---- selection: a station or a point ----
function selectStation(st) {
  const row = S.stationByKey.get(st.key);
  S.selection = { kind: "station", st, gx: st.x, gy: st.y, values: row ? row.values : null,
    daily_mean: row ? row.daily_mean : null };
  drawMap();
  renderSelection();
}

async function queryPoint(lat, lon, g) {
  lat = Math.round(lat * 1e4) / 1e4; lon = Math.round(lon * 1e4) / 1e4;
  S.selection = { kind: "point", lat, lon, gx: g[0], gy: g[1], loading: true };
  drawMap();
  renderSelection();
  try {
    const body = await getJSON(`/v1/forecasts/${S.date}/point?lat=${lat}&lon=${lon}&method=bilinear`);
    if (S.selection.lat !== lat || S.selection.lon !== lon) return; // a newer click won
    Object.assign(S.selection, { loading: false, values: body.values, daily_mean: body.daily_mean,
      cells: body.cells });
  } catch (e) {
    S.selection.loading = false;
    S.selection.error = e.status === 422 ? t("outside") : String(e.message);
  }
  renderSelection();
}

function renderSelection() {
  const sel = S.selection, el = $("selection");
  if (!sel) return;
  el.dataset.kind = sel.kind;
  let head;
  if (sel.kind === "station") {
    const st = sel.st;
    el.dataset.code = st.code || st.name;
    head = `<h2>${t("station")}: ${esc(st.name)} <small>${esc(st.sido)} · ${esc(st.code || "")}</small></h2>` +
      `<p class="hint">${st.lat.toFixed(4)}°N ${st.lon.toFixed(4)}°E · ${esc(st.name_rom)}</p>`;
  } else {
    el.dataset.lat = sel.lat; el.dataset.lon = sel.lon;
    head = `<h2>${t("point")}: ${sel.lat.toFixed(4)}°N ${sel.lon.toFixed(4)}°E</h2>`;
  }
  if (sel.loading) { el.innerHTML = head + `<p class="hint">${t("loading")}</p>`; return; }
  if (sel.error) { el.innerHTML = head + `<p>${esc(sel.error)}</p>`; return; }
  if (!sel.values) { el.innerHTML = head + `<p>${t("out_of_grid")}</p>`; return; }
  const g = gradeOf(sel.daily_mean);
  const cells = sel.cells ? `<p class="hint">${t("bilinear")}</p><ol class="cells">` +
    sel.cells.map((c) => `<li data-row="${c.row}" data-col="${c.col}" data-weight="${c.weight}">row ${c.row}, col ${c.col} (${c.lat.toFixed(3)}°N ${c.lon.toFixed(3)}°E) · ${t("weight")} ${c.weight.toFixed(3)}</li>`).join("") +
    "</ol>" : "";
  const cellsRow = (from) => sel.values.slice(from, from + 12).map((v, i) =>
    `<td data-hour="${from + i}" data-value="${v}" class="${from + i === S.hour && !S.mean ? "now" : ""}" style="background:${gradeOf(v).colour}22">${v.toFixed(1)}</td>`).join("");
  const heads = (from) => Array.from({ length: 12 }, (_, i) => `<th>${pad(from + i)}</th>`).join("");
  el.innerHTML = head +
    `<p><span class="big" data-daily-mean="${sel.daily_mean}">${sel.daily_mean.toFixed(1)}</span> ${t("ug")} ` +
    `${t("mean_of_day")} <span class="badge ${g.key}">${esc(gradeName(g.key))}</span></p>` +
    `<p class="advice">${esc(t("advice_" + g.key))}</p>` + sparkline(sel.values, 300, 60) +
    `<table class="hours" aria-label="${t("hour_kst")}"><tr>${heads(0)}</tr><tr>${cellsRow(0)}</tr>` +
    `<tr>${heads(12)}</tr><tr>${cellsRow(12)}</tr></table>` +
    `<p class="hint">${t("hour_kst")}, ${t("ug")}</p>` + cells;
}

// ---- search ----
const norm = (s) => String(s || "").toLowerCase().replace(/[\s\-'’.·]/g, "");
function search(q) {
  const n = norm(q);
  if (!n) return [];
  const hits = [];
  for (const st of S.geo.stations) {
    const exact = st.code === q.trim() || norm(st.name) === n || norm(st.name_rom) === n;
    const hay = st._hay || (st._hay = [st.code, st.name, st.name_rom, st.sido, st.sido_rom].map(norm).join("|"));
    if (exact || hay.includes(n)) hits.push([exact ? 0 : 1, st]);
  }
  hits.sort((a, b) => a[0] - b[0] || a[1].name.localeCompare(b[1].name, "ko"));
  return hits.slice(0, 12).map((h) => h[1]);
}
function renderResults() {
  const list = $("results"), q = $("search").value, hits = search(q);
  S.hits = hits;
  list.innerHTML = q.trim() && !hits.length ? `<li>${t("no_match")}</li>` : hits.map((st, i) =>
    `<li role="option" data-i="${i}" data-code="${esc(st.code || st.name)}">${esc(st.name)} <small>${esc(st.sido)} · ${esc(st.code || "–")} · ${esc(st.name_rom)}${st.in_grid ? "" : " · " + t("out_of_grid")}</small></li>`).join("");
}

// ---- downloads, status, verification ----
function renderDownloads() {
  const d = S.date, hour = S.mean ? "mean" : S.hour;
  const links = [
    ["dl_netcdf", `/v1/forecasts/${d}/grid?format=netcdf`],
    ["dl_csv", `/v1/forecasts/${d}/stations?format=csv`],
    ["dl_json", `/v1/forecasts/${d}/grid`],
    ["dl_stations_json", `/v1/forecasts/${d}/stations`],
    ["dl_png", `/v1/forecasts/${d}/grid?format=png&hour=${hour}`],
  ];
  $("downloads").innerHTML = links.map(([k, u]) => `<li><a href="${u}" download>${esc(t(k))}</a></li>`).join("");
}

function runState(day, run) {
  if (day.status === "succeeded" && day.cmaq_fallback) return "fallback";
  return day.status;
}

function renderStatus() {
  const st = S.status, table = $("status-table");
  if (!st) return;
  const tm = st.tomorrow;
  $("status-summary").innerHTML = esc(t("tomorrow_line", {
    date: tm.date, state: t(tm.late ? "late" : tm.state), deadline: kst(tm.deadline) })) +
    ` <span class="state ${st.healthy ? "succeeded" : "failed"}">${esc(t(st.healthy ? "healthy" : "unhealthy"))}</span>` +
    (st.scheduler ? ` · ${esc(t("scheduler_seen", { at: kst(st.scheduler.seen_at) }))}` : "");
  const byDate = new Map();
  for (const r of (S.runs || [])) {
    const prev = byDate.get(r.target_date);
    if (!prev || (r.published && !prev.published)) byDate.set(r.target_date, r);
  }
  const rows = st.last_14_days.map((day) => {
    const r = byDate.get(day.date), state = day.date === tm.date && tm.late ? "late" : runState(day, r);
    const m = r && r.model ? `${r.model.name} ${r.model.version}` : (r && r.cmaq_fallback ? "CMAQ" : "–");
    const synth = r && r.model ? t(r.model.trained_on_synthetic_data ? "yes" : "no") : "–";
    return `<tr data-date="${day.date}" data-state="${state}"><td>${day.date}</td>` +
      `<td><span class="state ${state}">${esc(t(state === "fallback" ? "fallback_state" : state))}</span></td>` +
      `<td class="num">${day.attempts}</td><td>${r && r.published_at ? kst(r.published_at) : "–"}</td>` +
      `<td>${esc(m)}</td><td>${synth}</td></tr>`;
  }).join("");
  const shown = new Set(st.last_14_days.map((d) => d.date));
  const earlier = [...byDate.values()].filter((r) => !shown.has(r.target_date)).slice(0, 10);
  const earlierRows = earlier.map((r) => {
    const state = r.status === "succeeded" && r.cmaq_fallback ? "fallback" : r.status;
    const m = r.model ? `${r.model.name} ${r.model.version}` : (r.cmaq_fallback ? "CMAQ" : "–");
    return `<tr data-date="${r.target_date}" data-state="${state}"><td>${r.target_date}</td>` +
      `<td><span class="state ${state}">${esc(t(state === "fallback" ? "fallback_state" : state))}</span></td>` +
      `<td class="num">${r.attempt}</td><td>${r.published_at ? kst(r.published_at) : "–"}</td><td>${esc(m)}</td>` +
      `<td>${r.model ? t(r.model.trained_on_synthetic_data ? "yes" : "no") : "–"}</td></tr>`;
  }).join("");
  const earlierHead = earlierRows ? `<tr><th colspan="6">${esc(t("earlier_runs"))}</th></tr>` : "";
  table.innerHTML = `<thead><tr><th>${t("st_date")}</th><th>${t("st_state")}</th><th>${t("st_attempts")}</th>` +
    `<th>${t("st_published")}</th><th>${t("st_model")}</th><th>${t("st_synthetic")}</th></tr></thead>` +
    `<tbody>${rows}${earlierHead}${earlierRows}</tbody>`;
}

// The verification series (GET /v1/verification?from=&to=): one entry a verified date, with
// the RMSE of the model, raw CMAQ and persistence, and rolling windows of model against CMAQ.
function renderVerification() {
  const el = $("verification"), v = S.verification, days = (v && v.days) || [];
  if (!v || v.missing || !days.length) {
    el.innerHTML = `<p class="hint" data-empty="1">${esc(t("no_verification"))}</p>`;
    return;
  }
  const fmt = (x) => (typeof x === "number" ? x.toFixed(2) : "–");
  const rows = days.map((d) => {
    const verdict = d.worse_than_cmaq == null ? ""
      : d.worse_than_cmaq ? `<span class="worse">${t("v_worse")}</span>` : `<span class="better">${t("v_better")}</span>`;
    return `<tr data-date="${esc(d.date)}" data-run="${d.run_id}"><td>${esc(d.date)}</td>` +
      `<td class="num">${fmt(d.model_rmse)}</td><td class="num">${fmt(d.cmaq_rmse)}</td>` +
      `<td class="num">${fmt(d.persistence_rmse)}</td><td class="num">${fmt(d.skill_vs_cmaq)}</td>` +
      `<td class="num">${fmt(d.model_peak_rmse)} / ${fmt(d.cmaq_peak_rmse)}</td><td>${verdict}</td></tr>`;
  }).join("");
  const windows = [v.last_7_days, v.last_30_days].filter(Boolean).map((w) =>
    `<li>${esc(t("v_summary", { n: w.days, skill: fmt(w.skill_vs_cmaq), worse: w.days_worse_than_cmaq }))}</li>`).join("");
  el.innerHTML = (windows ? `<ul>${windows}</ul>` : "") +
    `<table class="table"><thead><tr><th>${t("v_date")}</th><th>${t("v_model")}</th><th>${t("v_cmaq")}</th>` +
    `<th>${t("v_persist")}</th><th>${t("v_skill")}</th><th>${t("v_peak")}</th><th></th></tr></thead><tbody>${rows}</tbody></table>` +
    `<p class="hint">RMSE ${t("ug")}; ${t("v_skill")} = 1 − MSE(model) / MSE(CMAQ)</p>`;
}

// ---- text in the chosen language ----
function applyLanguage() {
  document.documentElement.lang = S.lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  $("lang").textContent = t("lang_button");
  renderBanners();
  if (S.values) redraw();
  renderStatus();
  renderVerification();
  renderResults();
}

function renderBanners() {
  const run = S.run, b = $("synthetic-banner");
  if (!run) return;
  const notes = [];
  if (run.trained_on_synthetic_data) notes.push(t("synthetic"));
  if (run.cmaq_fallback) notes.push(t("fallback"));
  b.hidden = !notes.length;
  b.textContent = notes.join(" ");
  const model = run.model ? `${run.model.name} ${run.model.version}` : "CMAQ";
  $("subtitle").textContent = t("run_line", { run: run.run_id, model, at: kst(run.published_at) });
}

function showError(msg) { const e = $("error-banner"); e.textContent = msg; e.hidden = !msg; }

// ---- loading ----
async function loadForecast(date) {
  const body = await getJSON(`/v1/page/forecast/${date}`);
  S.run = body.run; S.date = body.run.target_date; S.grid = body.grid; S.validTimes = body.valid_times;
  const [nh, nrows, ncols] = body.field.shape, raw = atob(body.field.data);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  const tenths = new Uint16Array(bytes.buffer); // little-endian, as every browser's platform
  S.values = Array.from({ length: nh }, (_, h) => Array.from({ length: nrows }, (_, r) =>
    Float32Array.from(tenths.subarray((h * nrows + r) * ncols, (h * nrows + r + 1) * ncols), (v) => v / 10)));
  S.meanField = Array.from({ length: nrows }, (_, r) => Float32Array.from({ length: ncols }, (_, c) => {
    let s = 0;
    for (let h = 0; h < nh; h++) s += S.values[h][r][c];
    return s / nh;
  }));
  S.hasVerification = body.verification_api;
  S.stationRows = body.stations.map((row) => ({ ...row, key: row.station_code || row.station_name }));
  S.stationByKey = new Map(S.stationRows.map((row) => [row.key, row]));
  if (S.selection && S.selection.kind === "station") selectStation(S.selection.st);
  else if (S.selection && S.selection.kind === "point") queryPoint(S.selection.lat, S.selection.lon, [S.selection.gx, S.selection.gy]);
  renderBanners();
  redraw();
}

async function loadVerification() {
  if (!S.hasVerification) { // this server has no verification API (yet): say so, ask nothing
    S.verification = { missing: true };
    renderVerification();
    return;
  }
  const to = S.date, from = new Date(Date.parse(`${to}T00:00:00Z`) - 29 * 864e5).toISOString().slice(0, 10);
  try {
    S.verification = await getJSON(`/v1/verification?from=${from}&to=${to}`);
  } catch (e) {
    S.verification = { missing: true, status: e.status };
  }
  renderVerification();
}

async function loadStatus() {
  const [status, runs] = await Promise.all([getJSON("/v1/status"), getJSON("/v1/runs?limit=100")]);
  S.status = status; S.runs = runs.runs;
  renderStatus();
  const dates = new Set([S.date, ...status.last_14_days.filter((d) => d.published).map((d) => d.date),
    ...runs.runs.filter((r) => r.published).map((r) => r.target_date)]);
  const sel = $("date-select"), published = [...dates].filter(Boolean).sort().reverse();
  sel.innerHTML = published.map((d) => `<option value="${d}"${d === S.date ? " selected" : ""}>${d}</option>`).join("");
}

async function main() {
  applyLanguage();
  const hour = new Date(Date.now() + 9 * 3600e3).getUTCHours(); // now, in KST
  S.hour = hour; $("hour").value = String(hour);
  try {
    const geo = await getJSON("/v1/page/geometry");
    S.geo = geo; S.proj = lcc(geo.grid);
    for (const st of geo.stations) { st.key = st.code || st.name; S.byCode.set(st.key, st); }
    await loadForecast("latest");
  } catch (e) {
    showError(e.status === 404 ? t("no_forecast") : String(e.message));
    return;
  } finally {
    wire();
  }
  S.readyMs = performance.now();
  document.body.dataset.ready = "1";
  loadStatus().catch((e) => showError(String(e.message)));
  loadVerification();
}

function wire() {
  if (S.wired) return;
  S.wired = true;
  $("hour").addEventListener("input", (ev) => { S.hour = Number(ev.target.value); redraw(); });
  $("mean").addEventListener("change", (ev) => { S.mean = ev.target.checked; redraw(); });
  $("colour-mode").addEventListener("change", (ev) => { S.mode = ev.target.value; redraw(); });
  $("play").addEventListener("click", () => {
    if (S.playing) { clearInterval(S.playing); S.playing = null; $("play").textContent = "▶"; return; }
    if (S.mean) { S.mean = false; $("mean").checked = false; }
    $("play").textContent = "❚❚";
    S.playing = setInterval(() => {
      S.hour = (S.hour + 1) % 24; $("hour").value = String(S.hour); redraw();
    }, 700);
  });
  $("lang").addEventListener("click", () => {
    S.lang = S.lang === "ko" ? "en" : "ko";
    localStorage.setItem("pm25-lang", S.lang);
    applyLanguage();
  });
  $("date-select").addEventListener("change", async (ev) => {
    try { await loadForecast(ev.target.value); await loadVerification(); } catch (e) { showError(String(e.message)); }
  });
  const canvas = $("map");
  canvas.addEventListener("mousemove", (ev) => S.geo && onHover(ev));
  canvas.addEventListener("mouseleave", () => { $("tooltip").hidden = true; });
  canvas.addEventListener("click", (ev) => S.geo && onClick(ev));
  $("search").addEventListener("input", renderResults);
  $("search").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && S.hits && S.hits.length) { selectStation(S.hits[0]); ev.preventDefault(); }
  });
  $("results").addEventListener("click", (ev) => {
    const li = ev.target.closest("li[data-i]");
    if (li) selectStation(S.hits[Number(li.dataset.i)]);
  });
}

main();
