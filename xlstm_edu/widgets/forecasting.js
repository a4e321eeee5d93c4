// The horizon explorer (chapter "Forecasting with xLSTM"): no computation, only selection. data
// (from xlstm_edu.widgets.forecasting.horizon_explorer): t (forecast origins, N), true and
// forecasts[model] as (H, N) (row k - 1: the values k steps ahead), mae[model] (H).

function compute(s, data) {
  const k = s.step, mae = data.mae[s.model];
  return {actual: data.true[k - 1], forecast: data.forecasts[s.model][k - 1], mae_at_step: mae,
    seasonal_naive_mae_at_step: data.mae.seasonal_naive, selected_mae: [mae[k - 1]]};
}

function draw(s, data, res, fig) {
  const W = fig.width, H1 = 250, H2 = 220, k = s.step;
  const blue = '#1f77b4', orange = '#ff7f0e', black = '#222222', gray = '#7f7f7f';
  const times = data.t.map(function (t) { return t + k - 1; });  // the time each forecast is for
  const steps = res.mae_at_step.map(function (_, j) { return j + 1; });
  const unit = data.unit ? ' (' + data.unit + ')' : '';
  const panels = [
    linePanel({x: 0, y: 0, w: W, h: H1, id: fig.uid + '-p0', xs: times,
      xlabel: 'time (' + data.step_name + 's from the start)', ylabel: 'value' + unit,
      title: s.model + ', forecast made ' + k + ' step' + (k > 1 ? 's' : '') + ' earlier',
      series: [
        {name: 'actual', label: 'actual', values: res.actual, color: black, line: true, width: 1.5},
        {name: 'forecast', label: s.model, values: res.forecast, color: blue, line: true}]}),
    linePanel({x: 0, y: H1, w: W, h: H2, id: fig.uid + '-p1', xs: steps, xlabel: 'steps ahead k',
      ylabel: 'test MAE' + unit, title: 'test MAE against the step ahead',
      series: [
        {name: 'mae_at_step', label: s.model, values: res.mae_at_step, color: blue, line: true,
          marker: 'circle'},
        {name: 'seasonal_naive_mae_at_step', label: 'seasonal naive',
          values: res.seasonal_naive_mae_at_step, color: gray, line: true, dash: '6 4'},
        {name: 'selected_mae', label: 'k = ' + k, values: res.selected_mae, xs: [k],
          color: orange, marker: 'square'}]})];
  return svgFigure(W, H1 + H2, panels.join(''),
    'actual values and forecasts k steps ahead; test MAE against k');
}
