// leakwatch dashboard: progressive enhancement only. Every page works without this file.
// It runs the probe from the button with live progress, and keeps the memory cards current.
(function () {
  'use strict';
  var base = document.body.getAttribute('data-base') || '';

  function bytes(n) {
    if (typeof n !== 'number' || !isFinite(n)) return '–';
    var units = ['B', 'KB', 'MB', 'GB', 'TB'];
    var sign = n < 0 ? '−' : '';
    var v = Math.abs(n);
    var u = 0;
    while (v >= 1000 && u < units.length - 1) { v /= 1000; u++; }
    var digits = u === 0 ? 0 : v >= 100 ? 0 : v >= 10 ? 1 : 2;
    return sign + v.toFixed(digits) + ' ' + units[u];
  }

  function getJson(path) {
    return fetch(base + path, { headers: { accept: 'application/json' }, credentials: 'same-origin' })
      .then(function (r) { return r.json().then(function (body) { return { status: r.status, body: body }; }); });
  }

  // Memory cards on the overview: poll the JSON API while the tab is visible.
  var cards = document.querySelectorAll('[data-mem]');
  if (cards.length > 0) {
    setInterval(function () {
      if (document.hidden) return;
      getJson('/api/process').then(function (r) {
        var mem = r.body && r.body.memory;
        if (!mem) return;
        cards.forEach(function (el) {
          var k = el.getAttribute('data-mem');
          if (typeof mem[k] === 'number') el.textContent = bytes(mem[k]);
        });
      }).catch(function () { /* the server may be restarting */ });
    }, 3000);
  }

  // The probe button: JSON POST, then poll the progress until the report is there.
  var form = document.getElementById('probe-form');
  if (!form) return;
  var statusBox = document.getElementById('probe-status');
  var bar = document.getElementById('probe-progress');
  var phase = document.getElementById('probe-phase');
  var errorBox = document.getElementById('probe-error');
  var button = document.getElementById('probe-button');

  function showError(msg) {
    errorBox.textContent = msg;
    errorBox.hidden = false;
    button.disabled = false;
  }

  function showProgress(p) {
    statusBox.hidden = false;
    if (p.total > 0) { bar.max = p.total; bar.value = p.done || 0; } else { bar.removeAttribute('value'); }
    phase.textContent = (p.phase || 'running') + (p.total > 0 ? ' ' + (p.done || 0) + '/' + p.total : '');
  }

  var polling = null;
  var posted = false;
  var seenRunning = false;
  function poll() {
    getJson('/api/probe').then(function (r) {
      if (r.status !== 200 || !r.body || polling === null) return;
      if (r.body.running) { seenRunning = true; showProgress(r.body); return; }
      // Not running: finished, unless our POST has not reached the server yet.
      if (!seenRunning && !posted) return;
      clearInterval(polling);
      polling = null;
      if (r.body.error) { showError(r.body.error); return; }
      // The report is rendered by the server: reload at the report.
      location.hash = 'probe-report';
      location.reload();
    }).catch(function () { /* keep polling */ });
  }

  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    errorBox.hidden = true;
    button.disabled = true;
    var iterations = Number(form.elements.iterations.value) || 30;
    showProgress({ phase: 'starting', done: 0, total: iterations });
    var payload = { method: form.getAttribute('data-method'), route: form.getAttribute('data-route'), iterations: iterations };
    var unsafe = document.getElementById('probe-unsafe');
    if (unsafe && unsafe.checked) payload.unsafe = true;
    fetch(base + '/api/probe', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(payload),
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) {
        if (r.status >= 400) {
          clearInterval(polling);
          polling = null;
          statusBox.hidden = true;
          showError((body && body.error) || ('the probe answered ' + r.status));
          return;
        }
        // The POST may answer at once (started) or when done; either way the poll finishes the job.
        posted = true;
        poll();
      });
    }).catch(function (e) { showError(String(e)); });
    polling = setInterval(poll, 400);
  });
})();
