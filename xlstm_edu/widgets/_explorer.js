// The runtime shared by the book's explorers (see xlstm_edu/widgets/_html.py for the contract).
// Pasted inside one function scope before the explorer's own code: float rounding, number
// formatting, SVG panels (line plots with axes and legend, heatmaps with a colour bar), mounting.
// Plain ES2017, function declarations only: nothing runs until mount() is called. No template
// literals and no dollar signs anywhere (MathJax would read them as math delimiters).

const FIGURE_WIDTH = 784;  // the book's text column in px: no figure is wider
const FONT = 12;  // px: tick labels, legend, axis labels (the smallest text drawn)
const FONT_TITLE = 13;  // px: panel titles
const MINUS = '\u2212';

// --- float types --------------------------------------------------------------------------------

const HALF_MIN_NORMAL = 6.103515625e-05;  // 2^-14
const HALF_QUANTUM_SUBNORMAL = 5.960464477539063e-08;  // 2^-24
const HALF_MAX = 65504;

// A number rounded to the nearest float16 (IEEE binary16, ties to even), subnormals included;
// magnitudes from 65520 up overflow to infinity, as numpy's float64 -> float16 cast does.
function roundHalf(x) {
  if (x !== x || x === 0 || !isFinite(x)) return x;
  const a = Math.abs(x);
  let q = HALF_QUANTUM_SUBNORMAL;
  if (a >= HALF_MIN_NORMAL) {
    let e = Math.floor(Math.log2(a));
    if (Math.pow(2, e) > a) e -= 1;
    else if (Math.pow(2, e + 1) <= a) e += 1;
    q = Math.pow(2, e - 10);  // 10 fraction bits
  }
  const v = a / q;  // exact: q is a power of two
  let k = Math.floor(v);
  const frac = v - k;
  if (frac > 0.5 || (frac === 0.5 && k % 2 === 1)) k += 1;
  const r = k * q;
  return Math.sign(x) * (r > HALF_MAX ? Infinity : r);
}

// The rounding after each operation in a float type, as numpy computes: float32 with Math.fround;
// float16 as numpy's half loops do, in float32 and then rounded to half.
function rounder(dtype) {
  if (dtype === 'float64') return function (x) { return x; };
  if (dtype === 'float32') return Math.fround;
  if (dtype === 'float16') return function (x) { return roundHalf(Math.fround(x)); };
  throw new Error('unknown float type ' + dtype);
}

// The cast of a float64 value to a float type (numpy's astype: one rounding).
function caster(dtype) {
  return dtype === 'float16' ? roundHalf : rounder(dtype);
}

// Numbers (nested arrays too) with NaN and infinities as null: the contract's data-values.
function jsonSafe(v) {
  if (Array.isArray(v)) return v.map(jsonSafe);
  if (typeof v === 'number') return isFinite(v) ? v : null;
  return v;
}

// --- text -----------------------------------------------------------------------------------------

function esc(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

// A tick label: at most 4 significant digits, exponent notation outside [1e-3, 1e5).
function fmt(v) {
  if (v === 0) return '0';
  const a = Math.abs(v);
  let s = (a >= 1e5 || a < 1e-3) ? v.toExponential(1).replace('e+', 'e')
    : String(Number(v.toPrecision(4)));
  return s.replace(/-/g, MINUS);
}

function textWidth(s, size) {
  return 0.6 * size * String(s).length;  // a generous estimate for sans-serif
}

function text(x, y, s, opts) {
  const o = opts || {};
  const size = o.size || FONT;
  let a = '<text x="' + x.toFixed(1) + '" y="' + y.toFixed(1) + '" font-size="' + size + '"';
  if (o.anchor) a += ' text-anchor="' + o.anchor + '"';
  if (o.weight) a += ' font-weight="' + o.weight + '"';
  if (o.rotate) a += ' transform="rotate(' + o.rotate + ' ' + x.toFixed(1) + ' ' + y.toFixed(1) + ')"';
  return a + ' fill="' + (o.color || '#222') + '">' + esc(s) + '</text>';
}

// --- axes -----------------------------------------------------------------------------------------

// About n round-numbered ticks covering [lo, hi].
function niceTicks(lo, hi, n) {
  const raw = (hi - lo) / (n || 5);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const r = raw / mag;
  const step = (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
  const ticks = [];
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + 1e-9 * step; k++) {
    ticks.push(k === 0 ? 0 : Number((k * step).toPrecision(12)));
  }
  return ticks;
}

// [lo, hi] of the finite numbers in the given arrays, padded by 5 %; [-1, 1] if there are none.
function dataRange(arrays, includeZero) {
  let lo = Infinity, hi = -Infinity;
  arrays.forEach(function (vs) {
    vs.forEach(function (v) { if (isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); } });
  });
  if (includeZero) { lo = Math.min(lo, 0); hi = Math.max(hi, 0); }
  if (!(lo <= hi)) return [-1, 1];
  if (hi - lo < 1e-12 * Math.max(1, Math.abs(hi))) {
    const pad = Math.max(1e-3, 0.1 * Math.abs(hi));
    return [lo - pad, hi + pad];
  }
  const pad = 0.05 * (hi - lo);
  return [lo - pad, hi + pad];
}

function seriesAttrs(name, values, shape) {
  if (!name) return '';
  let a = ' data-series="' + esc(name) + '" data-values="' + esc(JSON.stringify(jsonSafe(values))) + '"';
  if (shape) a += ' data-shape="' + esc(JSON.stringify(shape)) + '"';
  return a;
}

function marker(kind, px, py, color) {
  if (kind === 'circle') {
    return '<circle cx="' + px.toFixed(1) + '" cy="' + py.toFixed(1) + '" r="3" fill="' + color + '"/>';
  }
  if (kind === 'square') {
    return '<rect x="' + (px - 3).toFixed(1) + '" y="' + (py - 3).toFixed(1)
      + '" width="6" height="6" fill="' + color + '"/>';
  }
  if (kind === 'cross') {
    return '<path d="M' + (px - 4).toFixed(1) + ' ' + (py - 4).toFixed(1) + 'l8 8m0 -8l-8 8" stroke="'
      + color + '" stroke-width="1.8" fill="none"/>';
  }
  if (kind === 'triangle') {  // pointing down
    return '<path d="M' + (px - 5).toFixed(1) + ' ' + (py - 5).toFixed(1) + 'h10l-5 9z" fill="' + color + '"/>';
  }
  return '';
}

// One line-plot panel at (x, y) of size w x h, as SVG markup. p: {x, y, w, h, title, xlabel,
// ylabel, xs (x values), ylim (optional [lo, hi]), id (unique, for the clip path), series: [{name
// (data-series; optional), label (legend; optional), values, color, line (bool), marker ('circle',
// 'square', 'cross', 'triangle'), dash, bars (bool), at (optional y to draw the markers at)}]}.
function linePanel(p) {
  const left = 64, right = 12, bottom = 40;
  // legend entries, wrapped into rows under the title
  const entries = p.series.filter(function (s) { return s.label; });
  const rows = [[]];
  let used = 0;
  const avail = p.w - left - right;
  entries.forEach(function (s) {
    const wd = 34 + textWidth(s.label, FONT) + 16;
    if (used + wd > avail && rows[rows.length - 1].length) { rows.push([]); used = 0; }
    rows[rows.length - 1].push([s, used]);
    used += wd;
  });
  const top = 22 + 17 * (entries.length ? rows.length : 0) + 6;
  const pw = p.w - left - right, ph = p.h - top - bottom;
  const xs = p.xs;
  const xlo = Math.min.apply(null, xs) - 0.5, xhi = Math.max.apply(null, xs) + 0.5;
  const yl = p.ylim || dataRange(p.series.filter(function (s) { return s.at === undefined; })
    .map(function (s) { return s.values; }), p.series.some(function (s) { return s.bars; }));
  const X = function (v) { return left + (v - xlo) / (xhi - xlo) * pw; };
  const Y = function (v) { return top + (yl[1] - v) / (yl[1] - yl[0]) * ph; };
  const out = ['<g transform="translate(' + p.x + ' ' + p.y + ')">'];
  out.push(text(left, 15, p.title, {size: FONT_TITLE, weight: '600'}));
  rows.forEach(function (row, r) {
    row.forEach(function (e) {
      const s = e[0], lx = left + e[1], ly = 22 + 17 * r + 8;
      if (s.line || s.bars) {
        out.push('<path d="M' + lx + ' ' + ly + 'h26" stroke="' + s.color + '" stroke-width="'
          + (s.bars ? 8 : 2) + '"' + (s.dash ? ' stroke-dasharray="' + s.dash + '"' : '') + '/>');
      }
      if (s.marker) out.push(marker(s.marker, lx + 13, ly, s.color));
      out.push(text(lx + 32, ly + 4, s.label));
    });
  });
  // axes, grid and ticks
  out.push('<rect x="' + left + '" y="' + top + '" width="' + pw + '" height="' + ph
    + '" fill="#fff" stroke="#888"/>');
  niceTicks(yl[0], yl[1], Math.max(2, Math.round(ph / 35))).forEach(function (t) {
    if (t < yl[0] || t > yl[1]) return;
    const py = Y(t);
    out.push('<path d="M' + left + ' ' + py.toFixed(1) + 'h' + pw + '" stroke="#e6e6e6"/>');
    out.push(text(left - 6, py + 4, fmt(t), {anchor: 'end'}));
  });
  niceTicks(xlo, xhi, Math.max(2, Math.round(pw / 70))).forEach(function (t) {
    if (t < xlo || t > xhi || Math.round(t) !== t) return;
    const px = X(t);
    out.push('<path d="M' + px.toFixed(1) + ' ' + (top + ph) + 'v5" stroke="#888"/>');
    out.push(text(px, top + ph + 17, fmt(t), {anchor: 'middle'}));
  });
  if (p.xlabel) out.push(text(left + pw / 2, top + ph + 34, p.xlabel, {anchor: 'middle'}));
  if (p.ylabel) out.push(text(14, top + ph / 2, p.ylabel, {anchor: 'middle', rotate: -90}));
  // the data, clipped to the plot area
  const clip = p.id + '-clip';
  out.push('<clipPath id="' + esc(clip) + '"><rect x="' + left + '" y="' + top + '" width="' + pw
    + '" height="' + ph + '"/></clipPath>');
  out.push('<g clip-path="url(#' + esc(clip) + ')">');
  const dx = xs.length > 1 ? (X(xs[1]) - X(xs[0])) : pw / 2;
  p.series.forEach(function (s) {
    const sx = s.xs || xs;
    const parts = [];
    if (s.bars) {
      s.values.forEach(function (v, k) {
        if (!isFinite(v)) return;
        const y0 = Y(Math.max(yl[0], 0)), y1 = Y(v);
        parts.push('<rect x="' + (X(sx[k]) - 0.35 * dx).toFixed(1) + '" y="' + Math.min(y0, y1).toFixed(1)
          + '" width="' + (0.7 * dx).toFixed(1) + '" height="' + Math.abs(y1 - y0).toFixed(1)
          + '" fill="' + s.color + '"/>');
      });
    }
    if (s.line) {
      let d = '', pen = false;
      s.values.forEach(function (v, k) {
        if (!isFinite(v)) { pen = false; return; }
        d += (pen ? 'L' : 'M') + X(sx[k]).toFixed(1) + ' ' + Y(v).toFixed(1);
        pen = true;
      });
      parts.push('<path d="' + d + '" fill="none" stroke="' + s.color + '" stroke-width="'
        + (s.width || 2) + '"' + (s.dash ? ' stroke-dasharray="' + s.dash + '"' : '') + '/>');
    }
    if (s.marker) {
      s.values.forEach(function (v, k) {
        if (s.at !== undefined) { if (v) parts.push(marker(s.marker, X(sx[k]), Y(s.at), s.color)); return; }
        if (isFinite(v)) parts.push(marker(s.marker, X(sx[k]), Y(v), s.color));
      });
    }
    out.push('<g' + (s.at === undefined ? seriesAttrs(s.name, s.values) : '') + '>' + parts.join('') + '</g>');
  });
  out.push('</g></g>');
  return out.join('');
}

// matplotlib's RdBu_r (ColorBrewer RdBu, reversed): low = blue, 0 = white, high = red.
const RDBU_R = ['#053061', '#2166ac', '#4393c3', '#92c5de', '#d1e5f0', '#f7f7f7', '#fddbc7',
  '#f4a582', '#d6604d', '#b2182b', '#67001f'];

function diverging(t) {  // t in [-1, 1]
  const u = Math.min(1, Math.max(0, (t + 1) / 2)) * (RDBU_R.length - 1);
  const k = Math.min(RDBU_R.length - 2, Math.floor(u)), w = u - k;
  const a = RDBU_R[k], b = RDBU_R[k + 1];
  let c = '#';
  for (let j = 1; j < 7; j += 2) {
    const v = Math.round((1 - w) * parseInt(a.substr(j, 2), 16) + w * parseInt(b.substr(j, 2), 16));
    c += (v < 16 ? '0' : '') + v.toString(16);
  }
  return c;
}

// A heatmap panel (rows top to bottom, symmetric colour scale around 0) with a colour bar. p: {x, y,
// w, h, title, name (data-series), matrix (array of rows), xlabel, ylabel}.
function heatmapPanel(p) {
  const rows = p.matrix.length, cols = p.matrix[0].length;
  const left = 58, top = 30, bottom = 40, bar = 74;
  const cell = Math.min((p.w - left - bar) / cols, (p.h - top - bottom) / rows);
  let lim = 1e-12;
  p.matrix.forEach(function (row) { row.forEach(function (v) { if (isFinite(v)) lim = Math.max(lim, Math.abs(v)); }); });
  const out = ['<g transform="translate(' + p.x + ' ' + p.y + ')">'];
  out.push(text(left, 15, p.title, {size: FONT_TITLE, weight: '600'}));
  const flat = [];
  const cells = [];
  p.matrix.forEach(function (row, a) {
    row.forEach(function (v, b) {
      flat.push(v);
      cells.push('<rect x="' + (left + b * cell).toFixed(2) + '" y="' + (top + a * cell).toFixed(2)
        + '" width="' + (cell + 0.3).toFixed(2) + '" height="' + (cell + 0.3).toFixed(2) + '" fill="'
        + (isFinite(v) ? diverging(v / lim) : '#000') + '"/>');
    });
  });
  out.push('<g' + seriesAttrs(p.name, flat, [rows, cols]) + '>' + cells.join('') + '</g>');
  out.push('<rect x="' + left + '" y="' + top + '" width="' + (cols * cell).toFixed(2) + '" height="'
    + (rows * cell).toFixed(2) + '" fill="none" stroke="#888"/>');
  const every = Math.max(1, Math.ceil(4 * FONT / cell / 2));
  for (let b = 0; b < cols; b += every) {
    out.push(text(left + (b + 0.5) * cell, top + rows * cell + 16, String(b), {anchor: 'middle'}));
  }
  for (let a = 0; a < rows; a += every) {
    out.push(text(left - 6, top + (a + 0.5) * cell + 4, String(a), {anchor: 'end'}));
  }
  if (p.xlabel) out.push(text(left + cols * cell / 2, top + rows * cell + 34, p.xlabel, {anchor: 'middle'}));
  if (p.ylabel) out.push(text(14, top + rows * cell / 2, p.ylabel, {anchor: 'middle', rotate: -90}));
  // colour bar
  const bx = left + cols * cell + 12, bh = rows * cell, steps = 40;
  for (let k = 0; k < steps; k++) {
    out.push('<rect x="' + bx.toFixed(1) + '" y="' + (top + k * bh / steps).toFixed(2) + '" width="12" height="'
      + (bh / steps + 0.3).toFixed(2) + '" fill="' + diverging(1 - 2 * (k + 0.5) / steps) + '"/>');
  }
  out.push('<rect x="' + bx.toFixed(1) + '" y="' + top + '" width="12" height="' + bh.toFixed(1)
    + '" fill="none" stroke="#888"/>');
  [lim, 0, -lim].forEach(function (v, k) {
    out.push(text(bx + 16, top + k * bh / 2 + 4, fmt(Number(v.toPrecision(3)))));
  });
  out.push('</g>');
  return out.join('');
}

function svgFigure(width, height, body, label) {
  return '<svg width="' + width + '" height="' + height + '" viewBox="0 0 ' + width + ' ' + height
    + '" role="img" aria-label="' + esc(label || 'figure') + '" font-family="system-ui, sans-serif">'
    + body + '</svg>';
}

// --- mounting -------------------------------------------------------------------------------------

function fmtControl(v) {
  return String(Number(v.toPrecision(6))).replace(/-/g, MINUS);
}

// Wire the controls of an explorer's root to compute() and draw(); draw once now.
function mount(root, compute, draw) {
  const here = typeof document !== 'undefined' ? document.currentScript : null;
  if (here && here.closest && here.closest('.xlstm-explorer')) root = here.closest('.xlstm-explorer');
  if (!root || root.getAttribute('data-mounted')) return;
  root.setAttribute('data-mounted', '1');
  const spec = JSON.parse(root.querySelector('script.xe-spec').textContent);
  const figure = root.querySelector('.xe-figure');
  const inputs = spec.controls.map(function (c) {
    return root.querySelector('input[data-name="' + c.name + '"]');
  });
  function read() {
    const s = Object.assign({}, spec.fixed);
    spec.controls.forEach(function (c, k) {
      const v = Number(inputs[k].value);
      s[c.name] = c.options ? c.options[v] : v;
    });
    return s;
  }
  function update() {
    const s = read();
    spec.controls.forEach(function (c, k) {
      const shown = c.options ? s[c.name] : fmtControl(s[c.name]);
      const out = inputs[k].parentNode.querySelector('output');
      if (out) out.textContent = shown;
      inputs[k].setAttribute('aria-valuetext', shown);
    });
    let svg;
    try {
      // as wide as the column allows, at most FIGURE_WIDTH: laid out anew, never scaled down
      const width = Math.max(480, Math.min(FIGURE_WIDTH, Math.floor(figure.clientWidth || FIGURE_WIDTH)));
      svg = draw(s, spec.data, compute(s, spec.data), {uid: root.id, width: width});
    } catch (err) {
      svg = '<p>explorer error: ' + esc(String(err)) + '</p>';
      if (typeof console !== 'undefined') console.error(err);
    }
    figure.innerHTML = svg;
    root.setAttribute('data-settings', JSON.stringify(s));
  }
  inputs.forEach(function (el) { el.addEventListener('input', update); });
  let lastWidth = figure.clientWidth;
  if (typeof window !== 'undefined') {
    window.addEventListener('resize', function () {
      if (figure.clientWidth !== lastWidth) { lastWidth = figure.clientWidth; update(); }
    });
  }
  update();
}
