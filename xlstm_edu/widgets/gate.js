// The gate explorer (chapter "Exponential gating and the stabilizer"): one scalar sLSTM cell.
// compute() mirrors xlstm_edu.experiments.gating.gate_traces operation by operation: the stabilized
// cell of xlstm_edu.slstm.step_numpy in float64, and the textbook form of
// slstm.recurrent_unstabilized_numpy rounded to the chosen float type after every operation.
// data (drawn in Python by gate_traces itself): eps, zgate_preact (length S), ogate_preact.

// numpy's logaddexp (npy_logaddexp), every operation rounded by r.
function logaddexp(x, y, r) {
  if (x === y) return r(x + r(Math.LN2));
  const tmp = r(x - y);
  if (tmp > 0) return r(x + r(Math.log1p(r(Math.exp(-tmp)))));
  if (tmp <= 0) return r(y + r(Math.log1p(r(Math.exp(tmp)))));
  return tmp;  // NaN
}

// xlstm_edu.gating.sigmoid in a float type: exp(-logaddexp(0, -x)); numpy's float16 loops compute
// logaddexp in float32 and round once to half.
function sigmoidIn(x, dtype) {
  const r = rounder(dtype);
  const inner = dtype === 'float16' ? Math.fround : r;
  return r(Math.exp(-r(logaddexp(0, -x, inner))));
}

function compute(s, data) {
  const S = s.S, id = rounder('float64');
  const i = [], f = [], zpre = data.zgate_preact.slice(0, S), o = [];
  for (let t = 0; t < S; t++) {
    i.push(s.igate_offset + s.igate_noise * data.eps[t]);
    f.push(s.fgate_preact);
    o.push(data.ogate_preact);
  }
  if (s.spike_step >= 0 && s.spike_step < S) i[s.spike_step] += s.spike_height;
  // stabilized cell, float64 (slstm.step_numpy with R = None, from the zero state, m = -inf)
  const tr = {h: [], c: [], n: [], m: [], log_n_true: []};
  let c = 0, n = 0, m = -Infinity;
  for (let t = 0; t < S; t++) {
    const logfPlusM = -logaddexp(0, -f[t], id) + m;
    const mNew = Math.max(logfPlusM, i[t]);
    const iAct = Math.exp(i[t] - mNew), fAct = Math.exp(logfPlusM - mNew);
    m = mNew;
    c = fAct * c + iAct * Math.tanh(zpre[t]);
    n = fAct * n + iAct;
    tr.h.push(sigmoidIn(o[t], 'float64') * c / n);
    tr.c.push(c);
    tr.n.push(n);
    tr.m.push(m);
    tr.log_n_true.push(Math.log(n) + m);
  }
  // textbook form in the chosen float type (no stabilizer): i = exp(raw_i), f = sigmoid(raw_f)
  const dt = s.textbook_dtype, r = rounder(dt), cast = caster(dt);
  const hText = [];
  let ct = 0, nt = 0;
  for (let t = 0; t < S; t++) {
    const iAct = r(Math.exp(cast(i[t]))), fAct = sigmoidIn(cast(f[t]), dt);
    ct = r(r(fAct * ct) + r(iAct * r(Math.tanh(cast(zpre[t])))));
    nt = r(r(fAct * nt) + iAct);
    hText.push(r(r(sigmoidIn(cast(o[t]), dt) * ct) / nt));
  }
  return {igate_preact: i, fgate_preact: f, z: zpre.map(Math.tanh), m: tr.m,
    log_n_true: tr.log_n_true, c: tr.c, n: tr.n, h: tr.h, h_textbook: hText};
}

function draw(s, data, res, fig) {
  const W = fig.width, H = 186, xs = res.h.map(function (_, t) { return t; });
  const blue = '#1f77b4', orange = '#ff7f0e', red = '#d62728', gray = '#7f7f7f';
  const bad = res.h_textbook.map(function (v) { return !isFinite(v); });
  const panels = [
    linePanel({x: 0, y: 0, w: W, h: H, id: fig.uid + '-p0', xs: xs, ylabel: 'pre-activation',
      title: 'gate pre-activations',
      series: [
        {name: 'igate_preact', label: 'input pre-activation', values: res.igate_preact, color: blue,
          line: true, marker: 'circle'},
        {name: 'fgate_preact', label: 'forget pre-activation', values: res.fgate_preact, color: orange,
          line: true, dash: '6 4'}]}),
    linePanel({x: 0, y: H, w: W, h: H, id: fig.uid + '-p1', xs: xs, ylabel: 'log scale',
      title: 'stabilizer m and log n (never overflow)',
      series: [
        {name: 'm', label: 'stabilizer m', values: res.m, color: blue, line: true, marker: 'circle'},
        {name: 'log_n_true', label: 'log n (true normalizer)', values: res.log_n_true, color: orange,
          line: true, dash: '6 4'}]}),
    linePanel({x: 0, y: 2 * H, w: W, h: H, id: fig.uid + '-p2', xs: xs, ylabel: 'stored state',
      title: 'states as stored, scaled by exp(' + MINUS + 'm): the stored n is at least 1',
      series: [
        {name: 'c', label: 'c stored', values: res.c, color: blue, line: true, marker: 'circle'},
        {name: 'n', label: 'n stored', values: res.n, color: orange, line: true, marker: 'square'}]}),
    linePanel({x: 0, y: 3 * H, w: W, h: H + 14, id: fig.uid + '-p3', xs: xs, ylabel: 'output',
      xlabel: 'step t', ylim: [-1.1, 1.1], title: 'output h = o c / n',
      series: [
        {name: 'z', label: 'cell input z', values: res.z, color: gray, marker: 'circle'},
        {name: 'h', label: 'h stabilized', values: res.h, color: blue, line: true},
        {name: 'h_textbook', label: 'h textbook (' + s.textbook_dtype + ')', values: res.h_textbook,
          color: red, marker: 'cross'},
        {label: bad.some(Boolean) ? 'textbook inf/nan (drawn at 0)' : '', values: bad, at: 0, color: red, marker: 'triangle'}]})];
  return svgFigure(W, 4 * H + 14, panels.join(''),
    'traces of one sLSTM cell: gate pre-activations, stabilizer, stored states and output');
}
