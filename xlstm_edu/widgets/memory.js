// The memory explorer (chapter "mLSTM: matrix memory"): N key-value pairs in one mLSTM memory.
// compute() mirrors xlstm_edu.experiments.mlstm_memory.explorer_data: the writes and reads of
// store_and_retrieve as steps of the numba loop of xlstm_edu.mlstm.recurrent (same operations in the
// same order, float64), then memory_matrix, relative_error and the forgetting-only curve.
// data (drawn in Python by make_pairs): pairs[keys] = {keys, values}, each (max N, d); eps and
// read_fgate_preact (the constants store_and_retrieve uses).

// xlstm_edu.gating.log_sigmoid_scalar, which the numba loop calls: log(sigmoid(x)) without overflow.
function logSigmoid(x) {
  if (x >= 0) return -Math.log1p(Math.exp(-x));
  return x - Math.log1p(Math.exp(x));
}

function compute(s, data) {
  const d = s.d, N = s.n_pairs, pairs = data.pairs[s.keys], eps = data.eps;
  const scale = 1 / Math.sqrt(d), sq = Math.sqrt(d);
  const C = [], n = [];
  for (let a = 0; a < d; a++) { C.push(new Array(d).fill(0)); n.push(0); }
  let m = 0;  // the recurrent form's zero state: C = 0, n = 0, m = 0
  const zeros = new Array(d).fill(0);
  // One step of the numba loop: q, k (d), v (d); returns h (d).
  function step(q, k, v, ipre, fpre) {
    const logfPlusM = logSigmoid(fpre) + m;
    const mNew = Math.max(logfPlusM, ipre);
    const iAct = Math.exp(ipre - mNew), fAct = Math.exp(logfPlusM - mNew);
    m = mNew;
    const h = new Array(d).fill(0);
    let qn = 0;
    for (let a = 0; a < d; a++) {
      const qa = q[a] * scale, ika = iAct * k[a];
      n[a] = fAct * n[a] + ika;
      qn += qa * n[a];
      const row = C[a];
      for (let b = 0; b < d; b++) {
        const cab = fAct * row[b] + ika * v[b];  // C_t = f' C_{t-1} + i' k v^T
        row[b] = cab;
        h[b] += qa * cab;
      }
    }
    const den = Math.max(Math.abs(qn), Math.exp(-m)) + eps;  // gating.normalizer
    return h.map(function (x) { return x / den; });
  }
  for (let j = 0; j < N; j++) {  // writes: k_j, v_j; input pre-activation 0, the newest one's set
    step(zeros, pairs.keys[j], pairs.values[j], j === N - 1 ? s.newest_igate_preact : 0, s.fgate_preact);
  }
  const relErr = [];
  for (let j = 0; j < N; j++) {  // reads: q = sqrt(d) k_j, nothing written, nothing forgotten
    const h = step(pairs.keys[j].map(function (x) { return x * sq; }), zeros, zeros, 0,
      data.read_fgate_preact);
    let num = 0, den = 0;
    for (let b = 0; b < d; b++) {
      const e = h[b] - pairs.values[j][b];
      num += e * e;
      den += pairs.values[j][b] * pairs.values[j][b];
    }
    relErr.push(Math.sqrt(num) / Math.sqrt(den));
  }
  const expM = Math.exp(m);
  const forget = Math.exp(logSigmoid(s.fgate_preact));
  const forgettingOnly = [];
  for (let j = 0; j < N; j++) forgettingOnly.push(1 - Math.pow(forget, N - 1 - j));
  return {C: C.map(function (row) { return row.map(function (x) { return x * expM; }); }),
    relative_error: relErr, forgetting_only: forgettingOnly, forget: forget};
}

function draw(s, data, res, fig) {
  const W = fig.width, H = 340, wc = Math.min(300, Math.round(0.4 * W));
  const xs = res.relative_error.map(function (_, j) { return j; });
  const top = Math.max.apply(null, res.relative_error.filter(isFinite).concat([0]));
  const heat = heatmapPanel({x: 0, y: 0, w: wc, h: H, name: 'C', matrix: res.C,
    title: 'memory C', xlabel: 'value dimension', ylabel: 'key dimension'});
  const bars = linePanel({x: wc, y: 0, w: W - wc, h: H, id: fig.uid + '-err', xs: xs,
    ylim: [0, Math.max(1.2, 1.05 * top)], xlabel: 'pair j (0 = oldest, right = newest)',
    ylabel: 'retrieval error',
    title: 'retrieval error per pair',
    series: [
      {name: 'relative_error', label: '|h_j ' + MINUS + ' v_j| / |v_j|', values: res.relative_error,
        color: '#1f77b4', bars: true},
      {name: 'forgetting_only', label: 'forgetting alone: 1 ' + MINUS + ' f^age, f = ' + res.forget.toFixed(4),
        values: res.forgetting_only, color: '#222', line: true, width: 1.2, dash: '5 3',
        marker: 'circle'}]});
  return svgFigure(W, H, heat + bars, 'the mLSTM memory C and the retrieval error of each pair');
}
