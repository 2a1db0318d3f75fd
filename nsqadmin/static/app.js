// nsqadmin's single-page UI: plain JavaScript, no build step.
//
// Each view builds its page skeleton once and then refreshes its parts in
// place on a timer (tables, charts, banners), so forms and dialogs are never
// wiped by a refresh. The page shell (index.html) defines the globals read
// here: BASE_PATH, IS_ADMIN, NSQLOOKUPD, SAMPLE_INTERVAL_MS, USER_AGENT, ...
(function () {
  'use strict';

  var BASE = BASE_PATH === '/' ? '' : BASE_PATH;
  var REFRESH_MS = Math.min(10000, Math.max(1000, SAMPLE_INTERVAL_MS || 5000));
  var app = document.getElementById('app');
  var current = null; // the view on screen: {stop: function}
  var flash = null; // a banner to show on the next view: {kind, html}

  // ---- small helpers ------------------------------------------------------

  function esc(s) {
    return String(s === undefined || s === null ? '' : s).replace(/[&<>"']/g, function (c) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c];
    });
  }

  function $(sel, root) { return (root || document).querySelector(sel); }

  function url(path) { return BASE + path; }

  function topicURL(t) { return url('/topics/' + encodeURIComponent(t)); }
  function channelURL(t, c) { return url('/topics/' + encodeURIComponent(t) + '/' + encodeURIComponent(c)); }
  function nodeURL(n) { return url('/nodes/' + encodeURIComponent(n)); }

  function num(n) {
    if (n === null || n === undefined || isNaN(n)) { return '–'; }
    return Number(n).toLocaleString('en-US');
  }

  // damagedBadge marks a disk queue whose reader skipped damaged data
  // (backend_skipped_regions in nsqd's /stats): messages there were lost.
  function damagedBadge(x) {
    if (!x.backend_skipped_regions) { return ''; }
    return ' <span class="badge danger" title="' + esc(num(x.backend_skipped_regions) +
      ' damaged place(s) skipped in the disk queue (' + num(x.backend_skipped_bytes) +
      ' bytes); the messages there were lost') + '">damaged</span>';
  }

  function numCell(n, cls) {
    var c = 'num' + (cls ? ' ' + cls : '') + (n === 0 ? ' zero' : '');
    return '<td class="' + c + '">' + num(n) + '</td>';
  }

  function rate(r) {
    if (r === null || r === undefined || isNaN(r)) { return '–'; }
    if (r >= 100) { return Math.round(r).toLocaleString('en-US'); }
    return r.toFixed(r >= 10 ? 1 : 2).replace(/\.?0+$/, '') || '0';
  }

  // nanoseconds → "1.2ms"
  function latency(ns) {
    if (ns === null || ns === undefined) { return '–'; }
    if (ns >= 1e9) { return (ns / 1e9).toFixed(1) + 's'; }
    if (ns >= 1e6) { return (ns / 1e6).toFixed(1) + 'ms'; }
    if (ns >= 1e3) { return (ns / 1e3).toFixed(1) + 'µs'; }
    return Math.round(ns) + 'ns';
  }

  // seconds → "3h 4m"
  function duration(sec) {
    sec = Math.max(0, Math.floor(sec));
    var d = Math.floor(sec / 86400), h = Math.floor(sec % 86400 / 3600), m = Math.floor(sec % 3600 / 60), s = sec % 60;
    if (d) { return d + 'd ' + h + 'h'; }
    if (h) { return h + 'h ' + m + 'm'; }
    if (m) { return m + 'm ' + s + 's'; }
    return s + 's';
  }

  function quantileLabel(q) {
    var p = Math.round(q * 10000) / 100;
    return p === 100 ? 'max' : 'p' + p;
  }

  function last(arr) {
    for (var i = arr ? arr.length - 1 : -1; i >= 0; i--) {
      if (arr[i] !== null && arr[i] !== undefined) { return arr[i]; }
    }
    return null;
  }

  // ---- API ------------------------------------------------------------------

  // api resolves to {ok, status, data}; it never rejects.
  function api(method, path, body) {
    var opts = {
      method: method,
      headers: {
        'Accept': 'application/vnd.nsq; version=1.0',
        'X-UserAgent': USER_AGENT
      }
    };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    var ctl = window.AbortController ? new AbortController() : null;
    var timer = null;
    if (ctl) {
      opts.signal = ctl.signal;
      timer = setTimeout(function () { ctl.abort(); }, 20000);
    }
    return fetch(url('/api' + path), opts).then(function (resp) {
      return resp.text().then(function (text) {
        var data = {};
        try { data = text ? JSON.parse(text) : {}; } catch (e) { data = { message: text }; }
        return { ok: resp.ok, status: resp.status, data: data };
      });
    }, function (err) {
      return { ok: false, status: 0, data: { message: 'nsqadmin did not answer: ' + err.message } };
    }).then(function (r) {
      if (timer) { clearTimeout(timer); }
      return r;
    });
  }

  // ---- banners ---------------------------------------------------------------

  function upstreamList(errs) {
    return '<ul>' + errs.map(function (e) {
      return '<li>' + esc(e.kind) + ' <span class="node">' + esc(e.node) + '</span>: ' + esc(e.error) + '</li>';
    }).join('') + '</ul>';
  }

  // bannerFor describes an API result that is not a full success, or ''.
  function bannerFor(r, what) {
    var d = r.data || {};
    if (r.ok) {
      if (d.upstream_errors && d.upstream_errors.length) {
        var n = d.upstream_errors.length;
        return '<div class="banner warn"><strong>' + n + (n === 1 ? ' node' : ' nodes') +
          ' did not answer</strong> — the figures below leave ' + (n === 1 ? 'it' : 'them') + ' out.' +
          upstreamList(d.upstream_errors) + '</div>';
      }
      if (d.message) {
        return '<div class="banner warn">' + esc(d.message) + '</div>';
      }
      return '';
    }
    if (d.upstream_errors && d.upstream_errors.length) {
      return '<div class="banner error"><strong>No node answered' + (what ? ' for ' + esc(what) : '') + '.</strong>' +
        upstreamList(d.upstream_errors) + '</div>';
    }
    var msg = d.message || ('HTTP ' + r.status);
    var friendly = {
      TOPIC_NOT_FOUND: 'This topic does not exist (or no longer does).',
      CHANNEL_NOT_FOUND: 'This channel does not exist (or no longer does).',
      NODE_NOT_FOUND: 'No nsqd with this address is part of the cluster.',
      FORBIDDEN: 'Only admins may do this.'
    }[msg];
    return '<div class="banner error"><strong>' + esc(friendly || 'Request failed') + '</strong>' +
      (friendly ? '' : ' ' + esc(msg)) + (r.status ? ' <span class="small">(' + r.status + ' ' + esc(msg) + ')</span>' : '') + '</div>';
  }

  // setBanners shows the flash message and one banner per failed request;
  // the nodes that did not answer a successful request are merged into one
  // warning, so a node down is named once however many requests missed it.
  function setBanners(el, results) {
    if (!el) { return; }
    var html = '';
    if (flash && Date.now() - flash.at > 15000) { flash = null; }
    if (flash) {
      html += '<div class="banner ' + flash.kind + '">' + flash.html + '</div>';
    }
    var seen = {}, missing = [];
    results.forEach(function (x) {
      var r = x[0], d = r.data || {};
      if (r.ok && d.upstream_errors && d.upstream_errors.length) {
        d.upstream_errors.forEach(function (e) {
          var k = e.kind + ' ' + e.node;
          if (!seen[k]) { seen[k] = true; missing.push(e); }
        });
        return;
      }
      html += bannerFor(r, x[1]);
    });
    if (missing.length) {
      html = html + bannerFor({ ok: true, data: { upstream_errors: missing } });
    }
    if (el.innerHTML !== html) { el.innerHTML = html; }
  }

  function showFlash(kind, html) { flash = { kind: kind, html: html, views: 0, at: Date.now() }; }

  // ---- confirmation dialog ------------------------------------------------------

  function confirmAction(title, body, label) {
    var modal = $('#modal');
    $('#modal-title').textContent = title;
    $('#modal-body').textContent = body;
    var ok = $('#modal-confirm'), cancel = $('#modal-cancel');
    ok.textContent = label || 'Confirm';
    modal.hidden = false;
    ok.focus();
    return new Promise(function (resolve) {
      function done(v) {
        modal.hidden = true;
        ok.onclick = cancel.onclick = modal.onclick = null;
        document.removeEventListener('keydown', onKey);
        resolve(v);
      }
      function onKey(e) {
        if (e.key === 'Escape') { done(false); }
      }
      ok.onclick = function () { done(true); };
      cancel.onclick = function () { done(false); };
      modal.onclick = function (e) { if (e.target === modal) { done(false); } };
      document.addEventListener('keydown', onKey);
    });
  }

  // runAction asks for confirmation, calls the API and reports the outcome.
  function runAction(opts) {
    return confirmAction(opts.title, opts.body, opts.label).then(function (yes) {
      if (!yes) { return null; }
      return api(opts.method, opts.path, opts.payload).then(function (r) {
        if (r.ok) {
          var warn = r.data && r.data.upstream_errors && r.data.upstream_errors.length;
          showFlash(warn ? 'warn' : 'ok', esc(opts.done) + (warn ? ', but some nodes failed:' + upstreamList(r.data.upstream_errors) : '.'));
        } else {
          showFlash('error', '<strong>' + esc(opts.title) + ' failed.</strong> ' + bannerFor(r).replace(/<[^>]+>/g, ' '));
        }
        return r;
      });
    });
  }

  // ---- charts -------------------------------------------------------------------

  // niceScale picks a round grid step for values up to max, and the top of
  // the axis: a whole number of steps (at most 5).
  function niceScale(max) {
    if (!(max > 0)) { return { step: 1, top: 4 }; }
    var raw = max / 4, p = Math.pow(10, Math.floor(Math.log10(raw))), n = raw / p;
    var step = (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * p;
    return { step: step, top: Math.max(1, Math.ceil(max / step - 1e-9)) * step };
  }

  function shortNum(v) {
    if (v >= 1e9) { return (v / 1e9).toFixed(v % 1e9 ? 1 : 0) + 'G'; }
    if (v >= 1e6) { return (v / 1e6).toFixed(v % 1e6 ? 1 : 0) + 'M'; }
    if (v >= 1e3) { return (v / 1e3).toFixed(v % 1e3 ? 1 : 0) + 'k'; }
    return String(Math.round(v * 100) / 100);
  }

  function clockLabel(ms) {
    var d = new Date(ms);
    return String(d.getHours()).padStart(2, '0') + ':' + String(d.getMinutes()).padStart(2, '0') + ':' + String(d.getSeconds()).padStart(2, '0');
  }

  // drawChart renders lines into the <svg> el. lines: [{label, values, color}],
  // values aligned with times (null = gap). The svg's data-points attribute
  // counts the first line's points, so tests can watch it grow.
  function drawChart(el, times, lines, unit) {
    var W = Math.max(300, Math.round(el.clientWidth || el.getBoundingClientRect().width || 600)), H = 170, L = 46, R = 10, T = 10, B = 22;
    var max = 0, points = 0;
    lines.forEach(function (ln, i) {
      (ln.values || []).forEach(function (v) {
        if (v !== null && v !== undefined) {
          max = Math.max(max, v);
          if (i === 0) { points++; }
        }
      });
    });
    el.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    el.setAttribute('preserveAspectRatio', 'none');
    el.setAttribute('data-points', String(points));
    var scale = niceScale(max), ymax = scale.top;
    var t0 = times.length ? times[0] : 0, t1 = times.length ? times[times.length - 1] : 1;
    var span = Math.max(1, t1 - t0);
    function x(t) { return L + (t - t0) / span * (W - L - R); }
    function y(v) { return T + (1 - v / ymax) * (H - T - B); }
    var s = '';
    for (var gv = 0; gv <= ymax + scale.step / 2; gv += scale.step) {
      var gy = y(gv);
      s += '<line class="grid" x1="' + L + '" x2="' + (W - R) + '" y1="' + gy + '" y2="' + gy + '"></line>';
      s += '<text class="axis" x="' + (L - 6) + '" y="' + (gy + 3.5) + '" text-anchor="end">' + shortNum(gv) + '</text>';
    }
    if (times.length) {
      s += '<text class="axis" x="' + L + '" y="' + (H - 6) + '">' + clockLabel(t0) + '</text>';
      s += '<text class="axis" x="' + (W - R) + '" y="' + (H - 6) + '" text-anchor="end">' + clockLabel(t1) + '</text>';
    }
    if (points === 0) {
      s += '<text class="nodata" x="' + (W / 2) + '" y="' + (H / 2) + '" text-anchor="middle">' +
        (SAMPLE_INTERVAL_MS > 0 ? 'collecting samples…' : 'sampling is off (--stats-sample-interval=0)') + '</text>';
    }
    lines.forEach(function (ln) {
      var seg = [];
      function flush() {
        if (seg.length === 1) {
          s += '<circle cx="' + seg[0][0] + '" cy="' + seg[0][1] + '" r="2.5" fill="' + ln.color + '"></circle>';
        } else if (seg.length > 1) {
          var pts = seg.map(function (p) { return p[0].toFixed(1) + ',' + p[1].toFixed(1); }).join(' ');
          s += '<polygon class="area" fill="' + ln.color + '" points="' + seg[0][0].toFixed(1) + ',' + y(0) + ' ' + pts + ' ' +
            seg[seg.length - 1][0].toFixed(1) + ',' + y(0) + '"></polygon>';
          s += '<polyline class="line" stroke="' + ln.color + '" points="' + pts + '"></polyline>';
        }
        seg = [];
      }
      (ln.values || []).forEach(function (v, i) {
        if (v === null || v === undefined) { flush(); return; }
        seg.push([x(times[i]), y(v)]);
      });
      flush();
    });
    el.innerHTML = s;
  }

  function chartCard(id, title, hint) {
    return '<div class="card chart-card"><h2>' + esc(title) + (hint ? ' <span class="hint">' + esc(hint) + '</span>' : '') + '</h2>' +
      '<div class="chart-legend" id="' + id + '-legend"></div>' +
      '<svg class="chart" id="' + id + '" role="img" aria-label="' + esc(title) + '"></svg></div>';
  }

  function updateChart(id, times, lines, unit) {
    var el = document.getElementById(id);
    if (!el) { return; }
    drawChart(el, times, lines, unit);
    var legend = document.getElementById(id + '-legend');
    if (legend) {
      legend.innerHTML = lines.map(function (ln) {
        var v = last(ln.values);
        return '<span><span class="swatch" style="background:' + ln.color + '"></span>' + esc(ln.label) + ' <b>' +
          (v === null ? '–' : (ln.fmt || num)(v)) + '</b>' + (ln.unit ? ' ' + esc(ln.unit) : '') + '</span>';
      }).join('');
    }
  }

  function sparkline(values) {
    var vs = (values || []).slice(-60);
    var max = 0, n = 0;
    vs.forEach(function (v) { if (v !== null) { max = Math.max(max, v); n++; } });
    if (n < 2) { return '<span class="muted small">–</span>'; }
    var W = 120, H = 26, pts = [];
    vs.forEach(function (v, i) {
      if (v === null) { return; }
      pts.push((i / (vs.length - 1) * W).toFixed(1) + ',' + (H - 2 - (max ? v / max : 0) * (H - 4)).toFixed(1));
    });
    return '<svg class="spark" viewBox="0 0 ' + W + ' ' + H + '" preserveAspectRatio="none" data-points="' + n + '"><polyline points="' + pts.join(' ') + '"></polyline></svg>';
  }

  var COLORS = { rate: '#2f6fed', depth: '#e08a1e', inflight: '#18a37a' };

  // ---- shared page pieces ----------------------------------------------------------

  function breadcrumb(parts) {
    return '<div class="breadcrumb">' + parts.map(function (p) {
      return p[1] ? '<a href="' + esc(p[1]) + '" data-nav>' + esc(p[0]) + '</a>' : esc(p[0]);
    }).join('<span class="sep">/</span>') + '</div>';
  }

  function clientAttrs(c) {
    var out = [];
    if (c.sample_rate > 0) { out.push('<span class="badge">Sampled ' + c.sample_rate + '%</span>'); }
    if (c.tls) { out.push('<span class="badge tls" title="' + esc(c.tls_version + ' ' + c.tls_cipher_suite) + '">TLS</span>'); }
    if (c.deflate) { out.push('<span class="badge">Deflate</span>'); }
    if (c.snappy) { out.push('<span class="badge">Snappy</span>'); }
    if (c.authed) {
      var who = c.auth_identity || 'authed';
      out.push(c.auth_identity_url ? '<a class="badge ok" href="' + esc(c.auth_identity_url) + '" rel="noopener">' + esc(who) + '</a>'
        : '<span class="badge ok">' + esc(who) + '</span>');
    }
    return out.length ? '<span class="tags">' + out.join('') + '</span>' : '<span class="muted">–</span>';
  }

  function clientHost(c) {
    var port = (c.remote_address || '').split(':').pop();
    var host = esc((c.hostname || c.remote_address) + (c.hostname && port ? ':' + port : ''));
    if (c.client_id && c.client_id !== c.hostname && c.client_id !== (c.hostname || '').split('.')[0]) {
      host += ' <span class="muted small">' + esc(c.client_id) + '</span>';
    }
    return host;
  }

  function connectedCell(c) {
    var since = new Date(c.connect_ts * 1000);
    return '<td class="num" title="connected since ' + esc(since.toLocaleString()) + '">' + duration(Date.now() / 1000 - c.connect_ts) + '</td>';
  }

  // e2eCells renders latency percentiles: per node the value, aggregated the
  // average (with min–max in the tooltip).
  function e2eHeaders(e2e) {
    if (!e2e || !e2e.percentiles || !e2e.percentiles.length) { return ''; }
    return e2e.percentiles.map(function (p) { return '<th class="num">E2E ' + quantileLabel(p.quantile) + '</th>'; }).join('');
  }

  function e2eCells(e2e, want) {
    var n = want && want.percentiles ? want.percentiles.length : 0;
    if (!n) { return ''; }
    var out = '';
    for (var i = 0; i < n; i++) {
      var q = want.percentiles[i].quantile;
      var p = e2e && e2e.percentiles ? e2e.percentiles.filter(function (x) { return x.quantile === q; })[0] : null;
      if (!p || !e2e.count) { out += '<td class="num muted">–</td>'; continue; }
      var v = p.value !== undefined ? p.value : p.average;
      out += '<td class="num" title="min ' + latency(p.min) + ', max ' + latency(p.max) + '">' + latency(v) + '</td>';
    }
    return out;
  }

  function tableCard(title, hint, head, rows, emptyText) {
    return '<div class="card flush"><h2>' + esc(title) + (hint ? ' <span class="hint">' + hint + '</span>' : '') + '</h2>' +
      (rows ? '<div class="table-wrap"><table class="data"><thead><tr>' + head + '</tr></thead><tbody>' + rows + '</tbody></table></div>'
        : '<div class="empty">' + emptyText + '</div>') + '</div>';
  }

  // poll calls fn now and then every ms after the previous call settled,
  // until stopped.
  function poll(fn, ms) {
    var stopped = false, timer = null;
    function tick() {
      if (stopped) { return; }
      Promise.resolve(fn()).then(next, next);
    }
    function next() {
      if (!stopped) { timer = setTimeout(tick, ms); }
    }
    tick();
    return {
      stop: function () { stopped = true; clearTimeout(timer); },
      now: function () { clearTimeout(timer); tick(); }
    };
  }

  function setHTML(id, html) {
    var el = document.getElementById(id);
    if (el && el.innerHTML !== html) { el.innerHTML = html; }
  }

  // ---- views ---------------------------------------------------------------------------

  function topicsView() {
    document.title = 'Topics · nsqadmin';
    app.innerHTML = '<h1>Topics</h1><div class="banners" id="banners"></div>' +
      '<div class="grid-2 stack">' + chartCard('chart-rate', 'Messages per second', 'whole cluster') +
      chartCard('chart-depth', 'Queued messages', 'topics and channels, whole cluster') + '</div>' +
      '<div id="topics"><div class="loading">Loading…</div></div>';
    return poll(function () {
      return Promise.all([api('GET', '/topics'), api('GET', '/history')]).then(function (rs) {
        var tr = rs[0], hr = rs[1];
        setBanners($('#banners'), [[tr, 'the topic list'], [hr, '']]);
        var h = hr.ok ? hr.data : { times: [], series: null, children: {} };
        var total = h.series || { rate: [], depth: [] };
        updateChart('chart-rate', h.times || [], [{ label: 'published', values: total.rate, color: COLORS.rate, fmt: rate, unit: 'msg/s' }]);
        updateChart('chart-depth', h.times || [], [{ label: 'depth', values: total.depth, color: COLORS.depth },
          { label: 'in flight', values: total.in_flight, color: COLORS.inflight }]);
        if (!tr.ok) { setHTML('topics', ''); return; }
        var topics = tr.data.topics || [];
        var rows = topics.map(function (t) {
          var s = (h.children || {})[t];
          return '<tr><td><a href="' + esc(topicURL(t)) + '" data-nav>' + esc(t) + '</a></td>' +
            numCell(s ? last(s.depth) : null) + numCell(s ? last(s.in_flight) : null) +
            numCell(s ? last(s.messages) : null) +
            '<td class="num">' + rate(s ? last(s.rate) : null) + '</td>' +
            '<td>' + sparkline(s ? s.rate : null) + '</td></tr>';
        }).join('');
        setHTML('topics', tableCard('All topics', topics.length + (topics.length === 1 ? ' topic' : ' topics'),
          '<th>Topic</th><th class="num" title="messages queued in the topic and its channels">Depth</th><th class="num">In-Flight</th>' +
          '<th class="num">Messages</th><th class="num">Rate (msg/s)</th><th>Rate, last ' + Math.round((h.window_ms || 600000) / 60000) + ' min</th>',
          rows, 'No topics yet. Publish a message to create one' + (NSQLOOKUPD.length ? ', or create one on the <a href="' + url('/lookup') + '" data-nav>Lookup</a> page.' : '.')));
      });
    }, REFRESH_MS);
  }

  function actionButtons(kind, paused) {
    if (!IS_ADMIN) { return ''; }
    var K = kind === 'topic' ? 'Topic' : 'Channel';
    return '<div class="actions">' +
      (paused ? '<button class="btn btn-primary" data-action="unpause">Unpause ' + K + '</button>'
        : '<button class="btn btn-warn" data-action="pause">Pause ' + K + '</button>') +
      '<button class="btn" data-action="empty">Empty Queue</button>' +
      '<button class="btn btn-danger" data-action="delete">Delete ' + K + '</button></div>';
  }

  // ---- peek (not in NSQ): messages on each node, without consuming them ----

  // peekTabs wraps a page's overview in tabs with a Peek tab (admins only:
  // peek shows message bodies).
  function peekTabs(overview, channel) {
    if (!IS_ADMIN) { return overview; }
    var states = channel ? ['all', 'queued', 'deferred', 'in_flight'] : ['all', 'queued', 'deferred'];
    return '<div class="tabs" id="tabs"><button class="tab active" data-tab="overview" id="tab-overview">Overview</button>' +
      '<button class="tab" data-tab="peek" id="tab-peek">Peek</button></div>' +
      '<div id="panel-overview">' + overview + '</div>' +
      '<div id="panel-peek" hidden><div class="card peek-controls">' +
      '<label>State <select id="peek-state">' + states.map(function (x) { return '<option>' + x + '</option>'; }).join('') + '</select></label> ' +
      '<label>Messages <input id="peek-n" type="number" min="1" max="1000" value="20"></label> ' +
      '<label>Preview <select id="peek-format"><option value="text">text</option><option value="json">JSON</option><option value="hex">hex</option></select></label> ' +
      '<button class="btn btn-primary" id="peek-refresh">Peek</button>' +
      '<span class="hint"> Read-only: nothing is consumed, requeued or counted.</span></div>' +
      '<div id="peek-result"></div></div>';
  }

  function b64bytes(b64) {
    var bin = atob(b64 || ''), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out;
  }

  function preview(m, format) {
    var bytes = b64bytes(m.body), more = m.body_truncated ? '…' : '';
    if (format === 'hex') {
      var h = [];
      for (var i = 0; i < bytes.length; i++) { h.push((bytes[i] < 16 ? '0' : '') + bytes[i].toString(16)); }
      return h.join(' ') + more;
    }
    var text = new TextDecoder('utf-8').decode(bytes);
    if (format === 'json' && !m.body_truncated) {
      try { return JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* not JSON: as text */ }
    }
    return text + more;
  }

  function countdown(ns) {
    var s = Math.round((ns / 1e6 - Date.now()) / 1000);
    return s > 0 ? 'in ' + duration(s) : 'due';
  }

  function peekStateBadge(st) {
    var cls = { queued: 'ok', deferred: 'paused', in_flight: 'tls' }[st] || '';
    return '<span class="badge ' + cls + '">' + esc(st.replace('_', ' ')) + '</span>';
  }

  // peekDeath is where a dead letter came from (nsqd's "death" record).
  function peekDeath(d) {
    if (!d) { return ''; }
    return '<div class="peek-death">dead letter from ' + esc(d.source_topic + '/' + d.source_channel) + ' · ' + esc(d.reason) +
      ' after ' + num(d.attempts) + ' attempts · ' + duration(Math.max(0, Math.round((Date.now() - d.time / 1e6) / 1000))) + ' ago' +
      ' · original ID ' + esc(d.original_id) + ', published ' +
      duration(Math.max(0, Math.round((Date.now() - d.original_timestamp / 1e6) / 1000))) + ' ago</div>';
  }

  function renderPeek(r, format) {
    if (!r.ok) { return '<div class="card empty">' + bannerFor(r, 'peek') + '</div>'; }
    var nodes = r.data.nodes || [];
    if (!nodes.length) { return '<div class="card empty">No node has this topic.</div>'; }
    return nodes.map(function (n) {
      var title = esc(n.hostname ? n.hostname + ' (' + n.node + ')' : n.node);
      if (n.error || !n.peek) {
        return '<div class="card"><h2>' + title + '</h2><div class="empty">' + esc(n.error || 'no answer') + '</div></div>';
      }
      var pk = n.peek, msgs = pk.messages || [];
      var rows = msgs.map(function (m) {
        var when = m.state === 'deferred' ? '<span data-countdown="' + m.deliver_at + '">' + countdown(m.deliver_at) + '</span>'
          : m.state === 'in_flight' ? 'times out <span data-countdown="' + m.timeout_at + '">' + countdown(m.timeout_at) + '</span>' +
            (m.client_id ? ' · ' + esc(m.client_id) : '') : '–';
        return '<tr><td>' + peekStateBadge(m.state) + '</td><td class="mono">' + esc(m.id) + peekDeath(m.death) + '</td>' +
          '<td class="num">' + duration(Math.max(0, Math.round((Date.now() - m.timestamp / 1e6) / 1000))) + '</td>' +
          numCell(m.attempts) + '<td>' + when + '</td>' + numCell(m.size) +
          '<td class="wrap"><pre class="peek-body">' + esc(preview(m, format)) + '</pre></td></tr>';
      }).join('');
      return tableCard(n.hostname || n.node, 'depth ' + num(pk.depth) + ' · in flight ' + num(pk.in_flight_count) + ' · deferred ' + num(pk.deferred_count) + ' · ' + esc(n.node),
        '<th>State</th><th>ID</th><th class="num">Age</th><th class="num">Attempts</th><th>Deliver / Timeout</th><th class="num">Size</th><th>Body</th>',
        rows, 'Nothing to show on this node.');
    }).join('');
  }

  // wirePeek makes the tabs and the Peek panel work on a topic or channel page.
  function wirePeek(topic, channel) {
    if (!IS_ADMIN) { return; }
    var last = null;
    function load() {
      var q = '?topic=' + encodeURIComponent(topic) + (channel ? '&channel=' + encodeURIComponent(channel) : '') +
        '&state=' + encodeURIComponent($('#peek-state').value) + '&n=' + encodeURIComponent($('#peek-n').value || '20') +
        '&max_body=4096&encoding=base64';
      return api('GET', '/peek' + q).then(function (r) { last = r; setHTML('peek-result', renderPeek(r, $('#peek-format').value)); });
    }
    $('#tabs').addEventListener('click', function (e) {
      var b = e.target.closest('button[data-tab]');
      if (!b) { return; }
      var tab = b.getAttribute('data-tab');
      Array.prototype.forEach.call(document.querySelectorAll('#tabs .tab'), function (x) { x.classList.toggle('active', x === b); });
      $('#panel-overview').hidden = tab !== 'overview';
      $('#panel-peek').hidden = tab !== 'peek';
      if (tab === 'peek') { load(); }
    });
    $('#peek-refresh').addEventListener('click', load);
    $('#peek-state').addEventListener('change', load);
    $('#peek-format').addEventListener('change', function () { if (last) { setHTML('peek-result', renderPeek(last, $('#peek-format').value)); } });
    var timer = setInterval(function () {
      if (!document.body.contains($('#peek-result') || document.createElement('i'))) { clearInterval(timer); return; }
      Array.prototype.forEach.call(document.querySelectorAll('[data-countdown]'), function (el) {
        el.textContent = countdown(+el.getAttribute('data-countdown'));
      });
    }, 1000);
  }

  // redriveForm offers to move a dead-letter topic (<topic>.<channel>.dlq)
  // back to its source topic (admins only).
  function redriveForm(topic) {
    if (!IS_ADMIN || !/\.dlq$/.test(topic)) { return ''; }
    var src = topic.split('.').slice(0, -2).join('.');
    return '<form class="card limits-form" id="redrive-form"><h2>Dead letters <span class="hint">move the queued messages back</span></h2>' +
      '<label>To topic <input name="to_topic" value="' + esc(src) + '"></label>' +
      '<button class="btn btn-warn" type="submit" id="redrive">Redrive</button></form>';
  }

  function topicView(topic) {
    document.title = topic + ' · nsqadmin';
    app.innerHTML = breadcrumb([['Topics', url('/')], [topic]]) +
      '<div class="page-head"><h1><span>' + esc(topic) + '</span><span id="paused"></span></h1><div id="actions"></div></div>' +
      '<div class="banners" id="banners"></div>' + peekTabs(
      '<div class="grid-2 stack" id="charts">' + chartCard('chart-rate', 'Messages per second', 'published to this topic') +
      chartCard('chart-depth', 'Queued messages', 'topic and its channels') + '</div>' +
      '<div id="nodes"><div class="loading">Loading…</div></div><div id="channels"></div>' + redriveForm(topic), '');
    wirePeek(topic, '');
    var paused = false;
    var rf = $('#redrive-form');
    if (rf) {
      rf.addEventListener('submit', function (e) {
        e.preventDefault();
        var to = rf.elements.to_topic.value.trim();
        if (!to) { return; }
        runAction({
          title: 'Redrive dead letters?', body: 'Messages queued at dead-letter topic “' + topic + '” on every node are published to “' + to + '” and removed here.',
          label: 'Redrive', done: 'Redrove ' + topic + ' to ' + to,
          method: 'POST', path: '/topics/' + encodeURIComponent(topic), payload: { action: 'redrive', to_topic: to }
        }).then(function (r) { if (r) { p.now(); } });
      });
    }
    $('#actions').addEventListener('click', function (e) {
      var b = e.target.closest('button[data-action]');
      if (!b) { return; }
      var a = b.getAttribute('data-action');
      var spec = {
        pause: ['Pause topic?', 'Messages published to “' + topic + '” will queue at the topic and not reach its channels until it is unpaused.', 'Pause Topic', 'Paused topic ' + topic],
        unpause: ['Unpause topic?', 'Messages will flow from “' + topic + '” to its channels again.', 'Unpause Topic', 'Unpaused topic ' + topic],
        empty: ['Empty topic queue?', 'Every message queued at topic “' + topic + '” itself (not in its channels) will be deleted on every node. This cannot be undone.', 'Empty Queue', 'Emptied topic ' + topic],
        'delete': ['Delete topic?', 'Topic “' + topic + '”, all its channels and all their messages will be deleted on every node and in nsqlookupd. This cannot be undone.', 'Delete Topic', 'Deleted topic ' + topic]
      }[a];
      runAction({
        title: spec[0], body: spec[1], label: spec[2], done: spec[3],
        method: a === 'delete' ? 'DELETE' : 'POST', path: '/topics/' + encodeURIComponent(topic),
        payload: a === 'delete' ? undefined : { action: a }
      }).then(function (r) {
        if (r && r.ok && a === 'delete') { navigate(url('/')); return; }
        if (r) { p.now(); }
      });
    });
    $('#nodes').addEventListener('click', function (e) {
      var b = e.target.closest('button[data-tombstone]');
      if (!b) { return; }
      var node = b.getAttribute('data-tombstone');
      runAction({
        title: 'Tombstone topic producer?', label: 'Tombstone',
        body: 'nsqlookupd will stop listing ' + node + ' as a producer of “' + topic + '”, and the topic will be deleted on that node.',
        done: 'Tombstoned ' + topic + ' on ' + node,
        method: 'DELETE', path: '/nodes/' + encodeURIComponent(node), payload: { topic: topic }
      }).then(function (r) { if (r) { p.now(); } });
    });
    var p = poll(function () {
      return Promise.all([api('GET', '/topics/' + encodeURIComponent(topic)),
        api('GET', '/history?topic=' + encodeURIComponent(topic))]).then(function (rs) {
        var r = rs[0], hr = rs[1];
        setBanners($('#banners'), [[r, 'topic ' + topic]]);
        var h = hr.ok ? hr.data : { times: [], series: null, children: {} };
        var s = h.series || {};
        updateChart('chart-rate', h.times || [], [{ label: 'published', values: s.rate, color: COLORS.rate, fmt: rate, unit: 'msg/s' }]);
        updateChart('chart-depth', h.times || [], [{ label: 'depth', values: s.depth, color: COLORS.depth },
          { label: 'in flight', values: s.in_flight, color: COLORS.inflight }]);
        $('#charts').hidden = r.status === 404;
        if (!r.ok) {
          setHTML('nodes', ''); setHTML('channels', ''); setHTML('actions', r.status === 404 ? '' : actionButtons('topic', paused));
          return;
        }
        var t = r.data;
        if (t.paused !== paused || !$('#actions').innerHTML) {
          paused = t.paused;
          setHTML('actions', actionButtons('topic', paused));
        }
        setHTML('paused', t.paused ? '<span class="badge paused">paused</span>' : '');
        var e2e = t.e2e_processing_latency;
        var canTomb = IS_ADMIN && NSQLOOKUPD.length > 0;
        var nodes = t.nodes || [];
        var rows = nodes.map(function (n) {
          return '<tr><td><a href="' + esc(nodeURL(n.node)) + '" data-nav>' + esc(n.hostname ? n.hostname + ' (' + n.node + ')' : n.node) + '</a>' +
            (canTomb ? ' <button class="btn-link" title="tombstone this producer" data-tombstone="' + esc(n.node) + '">✘ tombstone</button>' : '') +
            (n.paused ? ' <span class="badge paused">paused</span>' : '') + '</td>' +
            numCell(n.depth) + '<td class="num">' + num(n.memory_depth) + ' + ' + num(n.backend_depth) + damagedBadge(n) + '</td>' +
            numCell(n.message_count) + numCell((n.channels || []).length) + e2eCells(n.e2e_processing_latency, e2e) + '</tr>';
        }).join('');
        if (nodes.length) {
          rows += '<tr class="total"><td>Total</td>' + numCell(t.depth) + '<td class="num">' + num(t.memory_depth) + ' + ' + num(t.backend_depth) + damagedBadge(t) + '</td>' +
            numCell(t.message_count) + numCell((t.channels || []).length) + e2eCells(e2e, e2e) + '</tr>';
        }
        setHTML('nodes', tableCard('Topic message queue', 'per nsqd', '<th>NSQd Host</th><th class="num">Depth</th><th class="num">Memory + Disk</th>' +
          '<th class="num">Messages</th><th class="num">Channels</th>' + e2eHeaders(e2e), rows, 'No producers exist for this topic.'));
        var chans = t.channels || [];
        var chRows = chans.map(function (c) {
          var cs = (h.children || {})[c.channel_name];
          return '<tr><td><a href="' + esc(channelURL(topic, c.channel_name)) + '" data-nav>' + esc(c.channel_name) + '</a>' +
            (c.paused ? ' <span class="badge paused">paused</span>' : '') + '</td>' +
            numCell(c.depth) + '<td class="num">' + num(c.memory_depth) + ' + ' + num(c.backend_depth) + damagedBadge(c) + '</td>' +
            numCell(c.in_flight_count) + numCell(c.deferred_count) + numCell(c.requeue_count) + numCell(c.timeout_count) +
            numCell(c.message_count) + numCell(c.client_count) + e2eCells(c.e2e_processing_latency, e2e) +
            '<td>' + sparkline(cs ? cs.rate : null) + '</td></tr>';
        }).join('');
        setHTML('channels', tableCard('Channels', chans.length + (chans.length === 1 ? ' channel' : ' channels'),
          '<th>Channel</th><th class="num">Depth</th><th class="num">Memory + Disk</th><th class="num">In-Flight</th>' +
          '<th class="num">Deferred</th><th class="num">Requeued</th><th class="num">Timed Out</th><th class="num">Messages</th>' +
          '<th class="num">Connections</th>' + e2eHeaders(e2e) + '<th>Rate</th>', chRows,
          'No channels exist for this topic. Messages will queue at the topic until a channel is created.'));
      });
    }, REFRESH_MS);
    return p;
  }

  function channelView(topic, channel) {
    document.title = topic + ' / ' + channel + ' · nsqadmin';
    app.innerHTML = breadcrumb([['Topics', url('/')], [topic, topicURL(topic)], [channel]]) +
      '<div class="page-head"><h1><span>' + esc(channel) + '</span><span class="subtitle">on ' + esc(topic) + '</span><span id="paused"></span></h1><div id="actions"></div></div>' +
      '<div class="banners" id="banners"></div>' + peekTabs(
      '<div class="grid-2 stack" id="charts">' + chartCard('chart-rate', 'Messages per second', 'put into this channel') +
      chartCard('chart-depth', 'Queued and in flight') + '</div>' +
      '<div id="nodes"><div class="loading">Loading…</div></div><div id="limits"></div>' + limitsForm() + '<div id="clients"></div>', channel);
    wirePeek(topic, channel);
    var paused = false;
    var lf = $('#limits-form');
    if (lf) {
      lf.addEventListener('submit', function (e) {
        e.preventDefault();
        var limits = {};
        ['max_depth', 'overflow', 'max_attempts', 'dead_letter_topic'].forEach(function (k) {
          var v = lf.elements[k].value.trim();
          if (v !== '') { limits[k] = v; }
        });
        if (Object.keys(limits).length === 0) { return; }
        runAction({
          title: 'Set channel limits?',
          body: 'Channel “' + channel + '” gets ' + Object.keys(limits).map(function (k) { return k + ' ' + limits[k]; }).join(', ') + ' on every node holding topic “' + topic + '”.',
          label: 'Set Limits', done: 'Set limits of channel ' + channel,
          method: 'POST', path: '/topics/' + encodeURIComponent(topic) + '/' + encodeURIComponent(channel),
          payload: { action: 'limits', limits: limits }
        }).then(function (r) { if (r) { p.now(); } });
      });
    }
    $('#actions').addEventListener('click', function (e) {
      var b = e.target.closest('button[data-action]');
      if (!b) { return; }
      var a = b.getAttribute('data-action');
      var spec = {
        pause: ['Pause channel?', 'Consumers of “' + channel + '” will get no messages until it is unpaused; messages keep queueing.', 'Pause Channel', 'Paused channel ' + channel],
        unpause: ['Unpause channel?', 'Consumers of “' + channel + '” will get messages again.', 'Unpause Channel', 'Unpaused channel ' + channel],
        empty: ['Empty channel queue?', 'Every message queued, deferred or in flight on channel “' + channel + '” will be deleted on every node. This cannot be undone.', 'Empty Queue', 'Emptied channel ' + channel],
        'delete': ['Delete channel?', 'Channel “' + channel + '” and all its messages will be deleted on every node and in nsqlookupd; its consumers are disconnected. This cannot be undone.', 'Delete Channel', 'Deleted channel ' + channel]
      }[a];
      runAction({
        title: spec[0], body: spec[1], label: spec[2], done: spec[3],
        method: a === 'delete' ? 'DELETE' : 'POST',
        path: '/topics/' + encodeURIComponent(topic) + '/' + encodeURIComponent(channel),
        payload: a === 'delete' ? undefined : { action: a }
      }).then(function (r) {
        if (r && r.ok && a === 'delete') { navigate(topicURL(topic)); return; }
        if (r) { p.now(); }
      });
    });
    var p = poll(function () {
      var q = '?topic=' + encodeURIComponent(topic) + '&channel=' + encodeURIComponent(channel);
      return Promise.all([api('GET', '/topics/' + encodeURIComponent(topic) + '/' + encodeURIComponent(channel)),
        api('GET', '/history' + q)]).then(function (rs) {
        var r = rs[0], hr = rs[1];
        setBanners($('#banners'), [[r, 'channel ' + channel]]);
        var h = hr.ok ? hr.data : { times: [], series: null };
        var s = h.series || {};
        updateChart('chart-rate', h.times || [], [{ label: 'messages', values: s.rate, color: COLORS.rate, fmt: rate, unit: 'msg/s' }]);
        updateChart('chart-depth', h.times || [], [{ label: 'depth', values: s.depth, color: COLORS.depth },
          { label: 'in flight', values: s.in_flight, color: COLORS.inflight }]);
        $('#charts').hidden = r.status === 404;
        if (!r.ok) {
          setHTML('nodes', ''); setHTML('clients', ''); setHTML('actions', r.status === 404 ? '' : actionButtons('channel', paused));
          return;
        }
        var c = r.data;
        if (c.paused !== paused || !$('#actions').innerHTML) {
          paused = c.paused;
          setHTML('actions', actionButtons('channel', paused));
        }
        setHTML('paused', c.paused ? '<span class="badge paused">paused</span>' : '');
        var e2e = c.e2e_processing_latency;
        var nodes = c.nodes || [];
        var rows = nodes.map(function (n) {
          return '<tr><td><a href="' + esc(nodeURL(n.node)) + '" data-nav>' + esc(n.hostname ? n.hostname + ' (' + n.node + ')' : n.node) + '</a>' +
            (n.paused ? ' <span class="badge paused">paused</span>' : '') + '</td>' + statCells(n) + e2eCells(n.e2e_processing_latency, e2e) + '</tr>';
        }).join('');
        rows += '<tr class="total"><td>Total</td>' + statCells(c) + e2eCells(e2e, e2e) + '</tr>';
        setHTML('nodes', tableCard('Channel message queue', 'per nsqd', statHeaders() + e2eHeaders(e2e), rows));
        setHTML('limits', limitsCard(c, nodes));
        var clients = c.clients || [];
        var cRows = clients.map(function (cl) {
          return '<tr><td>' + clientHost(cl) + '</td><td class="wrap">' + esc(cl.user_agent || '–') + '</td><td>' + clientAttrs(cl) + '</td>' +
            '<td><a href="' + esc(nodeURL(cl.node)) + '" data-nav>' + esc(cl.node) + '</a></td>' +
            numCell(cl.in_flight_count) + numCell(cl.ready_count) + numCell(cl.finish_count) + numCell(cl.requeue_count) +
            numCell(cl.message_count) + connectedCell(cl) + '</tr>';
        }).join('');
        setHTML('clients', tableCard('Client connections', clients.length + (clients.length === 1 ? ' client' : ' clients'),
          '<th>Client Host</th><th>User-Agent</th><th>Attributes</th><th>NSQd Host</th><th class="num">In-Flight</th>' +
          '<th class="num">Ready Count</th><th class="num">Finished</th><th class="num">Requeued</th><th class="num">Messages</th>' +
          '<th class="num">Connected</th>', cRows, 'No consumers are connected to this channel.'));
      });
    }, REFRESH_MS);
    return p;
  }

  // ---- limits and dead letters (not in NSQ's nsqadmin) --------------------------

  // limitBar draws depth against max_depth; nothing when unlimited.
  function limitBar(depth, max) {
    if (!(max > 0)) { return '<span class="muted">no limit</span>'; }
    var pct = Math.min(100, Math.round(depth / max * 100));
    return '<span class="limit-bar' + (pct >= 90 ? ' full' : '') + '" data-depth="' + depth + '" data-max="' + max + '" title="' + pct + '%">' +
      '<span style="width:' + pct + '%"></span></span> <span class="limit-text">' + num(depth) + ' / ' + num(max) + '</span>';
  }

  function limitsCard(c, nodes) {
    var any = c.limits || c.dead_lettered_count || c.rejected_count || c.dropped_count || c.expired_count;
    if (!any) { return ''; }
    var l = c.limits || {};
    var rows = nodes.map(function (n) {
      var nl = n.limits || {};
      return '<tr><td>' + esc(n.hostname ? n.hostname + ' (' + n.node + ')' : n.node) + '</td><td>' + limitBar(n.depth + (n.deferred_count || 0), nl.max_depth) + '</td>' +
        '<td>' + esc(nl.overflow || '–') + '</td>' + numCell(nl.max_attempts || 0) + numCell(n.rejected_count || 0) + numCell(n.dropped_count || 0) +
        numCell(n.expired_count || 0) + numCell(n.dead_lettered_count || 0) + '</tr>';
    }).join('');
    rows += '<tr class="total"><td>Total</td><td>' + limitBar(c.depth + (c.deferred_count || 0), l.max_depth) + '</td><td>' + esc(l.overflow || '–') + '</td>' +
      numCell(l.max_attempts || 0) + numCell(c.rejected_count || 0) + numCell(c.dropped_count || 0) + numCell(c.expired_count || 0) +
      numCell(c.dead_lettered_count || 0) + '</tr>';
    var dlq = l.dead_letter_topic && l.dead_letter_topic !== '-' ?
      ' · dead letters go to <a id="dlq-link" href="' + esc(topicURL(l.dead_letter_topic)) + '" data-nav>' + esc(l.dead_letter_topic) + '</a>' : '';
    return tableCard('Limits', 'depth (queued + deferred) against max_depth' + dlq,
      '<th>NSQd Host</th><th>Depth / Limit</th><th>Overflow</th><th class="num">Max Attempts</th><th class="num">Rejected</th>' +
      '<th class="num">Dropped</th><th class="num">Expired</th><th class="num">Dead-lettered</th>', rows);
  }

  // limitsForm sets /channel/config keys on every node (admins only).
  function limitsForm() {
    if (!IS_ADMIN) { return ''; }
    return '<form class="card limits-form" id="limits-form"><h2>Set limits <span class="hint">on every node holding the topic; empty fields are left as they are</span></h2>' +
      '<label>Max depth <input name="max_depth" type="number" min="0" placeholder="0 = unlimited"></label>' +
      '<label>Overflow <select name="overflow"><option value=""></option><option value="reject">reject</option><option value="drop-oldest">drop-oldest</option></select></label>' +
      '<label>Max attempts <input name="max_attempts" type="number" min="0" max="65535"></label>' +
      '<label>Dead-letter topic <input name="dead_letter_topic" placeholder="topic.channel.dlq"></label>' +
      '<button class="btn btn-primary" type="submit" id="limits-save">Save Limits</button></form>';
  }

  function statHeaders() {
    return '<th>NSQd Host</th><th class="num">Depth</th><th class="num">Memory + Disk</th><th class="num">In-Flight</th>' +
      '<th class="num">Deferred</th><th class="num">Requeued</th><th class="num">Timed Out</th><th class="num">Messages</th>' +
      '<th class="num">Connections</th>';
  }

  function statCells(c) {
    return numCell(c.depth) + '<td class="num">' + num(c.memory_depth) + ' + ' + num(c.backend_depth) + damagedBadge(c) + '</td>' +
      numCell(c.in_flight_count) + numCell(c.deferred_count) + numCell(c.requeue_count) + numCell(c.timeout_count) +
      numCell(c.message_count) + numCell(c.client_count);
  }

  function nodesView() {
    document.title = 'Nodes · nsqadmin';
    app.innerHTML = '<h1>NSQd nodes <span class="subtitle" id="count"></span></h1><div class="banners" id="banners"></div>' +
      '<div id="nodes"><div class="loading">Loading…</div></div>';
    return poll(function () {
      return api('GET', '/nodes').then(function (r) {
        setBanners($('#banners'), [[r, 'the node list']]);
        if (!r.ok) { setHTML('nodes', ''); return; }
        var nodes = r.data.nodes || [];
        setHTML('count', '(' + nodes.length + ')');
        var lookupd = NSQLOOKUPD.length > 0;
        var repl = nodes.some(function (n) { return !!n.replication; });
        var rows = nodes.map(function (n) {
          var node = n.broadcast_address + ':' + n.http_port;
          if (n.broadcast_address.indexOf(':') >= 0) { node = '[' + n.broadcast_address + ']:' + n.http_port; }
          var conns = (n.remote_addresses || []).length;
          var topics = (n.topics || []).map(function (t) {
            return '<a class="badge' + (t.tombstoned ? ' danger' : '') + '" href="' + esc(topicURL(t.topic)) + '" data-nav' +
              (t.tombstoned ? ' title="tombstoned on this node"' : '') + '>' + esc(t.topic) + '</a>';
          }).join('');
          return '<tr' + (n.out_of_date ? ' class="outdated" title="older than the newest nsqd in the cluster"' : '') + '>' +
            '<td>' + esc(n.hostname) + '</td><td><a href="' + esc(nodeURL(node)) + '" data-nav>' + esc(node) + '</a>' +
            (n.draining ? ' <span class="badge draining" title="refusing publishes until its channels are empty">DRAINING</span>' : '') + roleBadge(n.replication) + '</td>' +
            '<td class="num">' + n.tcp_port + '</td><td class="num">' + n.http_port + '</td>' +
            '<td>' + esc(n.version) + (n.out_of_date ? ' <span class="badge paused">out of date</span>' : '') + '</td>' +
            (lookupd ? '<td class="num' + (conns !== NSQLOOKUPD.length ? ' nonzero-warn' : '') + '" title="' + esc((n.remote_addresses || []).join('\n')) + '">' + conns + '</td>' : '') +
            (repl ? replCells(n.replication) : '') +
            '<td class="wrap"><span class="tags"><span class="badge count">' + (n.topics || []).length + '</span>' + topics + '</span></td></tr>';
        }).join('');
        setHTML('nodes', tableCard('Nodes', lookupd ? 'from ' + NSQLOOKUPD.length + ' nsqlookupd' : 'from --nsqd-http-address',
          '<th>Hostname</th><th>Address</th><th class="num">TCP Port</th><th class="num">HTTP Port</th><th>Version</th>' +
          (lookupd ? '<th class="num" title="nsqlookupd connections">Lookupd Conns.</th>' : '') + (repl ? REPL_HEADERS : '') + '<th>Topics</th>', rows, 'No nsqd nodes found.'));
      });
    }, REFRESH_MS);
  }

  // Replica sets (beyond NSQ): a node's role badge and its view of its
  // set, from the replication object of /api/nodes and /api/nodes/:node.
  var REPL_HEADERS = '<th title="replica ID of the leader this node knows">Leader</th><th class="num">Term</th><th class="num">Commit Idx.</th>' +
    '<th class="num">Applied Idx.</th><th class="num" title="committed log entries not applied here yet">Lag</th>';

  function roleBadge(r) {
    if (!r) { return ''; }
    var title = r.role === 'leader' ? 'leads its replica set and delivers its messages' :
      r.role === 'follower' ? 'follows ' + (r.leader_id || 'no known leader') + '; its consumers are served through the leader' : 'no leader known';
    return ' <span class="badge role-' + esc(r.role) + '" title="' + esc(title) + '">' + esc(r.role.toUpperCase()) + '</span>';
  }

  function replCells(r) {
    if (!r) { return '<td>–</td><td class="num">–</td><td class="num">–</td><td class="num">–</td><td class="num">–</td>'; }
    return '<td class="repl-leader" title="' + esc(r.leader_address ? 'raft address ' + r.leader_address : '') + '">' + esc(r.leader_id || 'none') + '</td>' +
      numCell(r.term) + numCell(r.commit_index) + numCell(r.applied_index) + numCell(r.lag, r.lag > 0 ? 'nonzero-warn' : '');
  }

  function nodeView(node) {
    document.title = node + ' · nsqadmin';
    app.innerHTML = breadcrumb([['Nodes', url('/nodes')], [node]]) +
      '<div class="page-head"><h1><span>' + esc(node) + '</span><span class="subtitle" id="hostname"></span><span id="draining"></span><span id="role"></span></h1><div id="node-actions"></div></div>' +
      '<div class="banners" id="banners"></div>' +
      '<div id="summary"></div><div id="replication"></div><div id="blockers"></div><div id="topics"><div class="loading">Loading…</div></div>';
    $('#node-actions').addEventListener('click', function (e) {
      if (!e.target.closest('button[data-action="drain"]')) { return; }
      runAction({
        title: 'Drain node?', label: 'Drain Node',
        body: 'nsqd ' + node + ' will refuse new publishes (publishers get E_PUB_FAILED / HTTP 503), let its consumers empty every channel, ' +
          'unregister from nsqlookupd as each channel empties, and then exit. A drain cannot be cancelled.',
        done: 'Draining ' + node,
        method: 'POST', path: '/nodes/' + encodeURIComponent(node), payload: { action: 'drain' }
      }).then(function (r) { if (r) { p.now(); } });
    });
    var canTomb = IS_ADMIN && NSQLOOKUPD.length > 0;
    $('#topics').addEventListener('click', function (e) {
      var b = e.target.closest('button[data-tombstone]');
      if (!b) { return; }
      var topic = b.getAttribute('data-tombstone');
      runAction({
        title: 'Tombstone topic producer?', label: 'Tombstone',
        body: 'nsqlookupd will stop listing ' + node + ' as a producer of “' + topic + '”, and the topic will be deleted on this node.',
        done: 'Tombstoned ' + topic + ' on ' + node,
        method: 'DELETE', path: '/nodes/' + encodeURIComponent(node), payload: { topic: topic }
      }).then(function (r) { if (r) { p.now(); } });
    });
    var p = poll(function () {
      return api('GET', '/nodes/' + encodeURIComponent(node)).then(function (r) {
        setBanners($('#banners'), [[r, 'node ' + node]]);
        if (!r.ok) { setHTML('topics', ''); setHTML('summary', ''); return; }
        var d = r.data, topics = d.topics || [];
        var nch = 0;
        topics.forEach(function (t) { nch += (t.channels || []).length; });
        setHTML('hostname', d.hostname ? esc(d.hostname) + ' · nsqd v' + esc(d.version) : '');
        setHTML('draining', d.draining ? ' <span class="badge draining" title="since ' + esc(new Date(d.drain_started * 1000).toLocaleString()) + '">DRAINING</span>' : '');
        setHTML('role', roleBadge(d.replication));
        setHTML('replication', d.replication ? tableCard('Replica set', 'this node\'s view (GET /replication)', REPL_HEADERS,
          '<tr>' + replCells(d.replication) + '</tr>', '') : '');
        setHTML('node-actions', IS_ADMIN && !d.draining ? '<div class="actions"><button class="btn btn-danger" data-action="drain">Drain Node</button></div>' : '');
        var bl = d.draining ? (d.blockers || []) : [];
        setHTML('blockers', !d.draining ? '' : tableCard('Drain', 'what still holds the drain', '<th>Topic</th><th>Channel</th><th class="num">Depth</th>' +
          '<th class="num">In-Flight</th><th class="num">Deferred</th><th class="num">Consumers</th><th>Paused</th>',
          bl.map(function (b) {
            return '<tr><td>' + esc(b.topic) + '</td><td>' + esc(b.channel || '(topic)') + '</td>' + numCell(b.depth) + numCell(b.in_flight_count) +
              numCell(b.deferred_count) + numCell(b.client_count) + '<td>' + (b.paused ? '<span class="badge paused">paused</span>' : '') + '</td></tr>';
          }).join(''), 'Every channel is empty: the node is about to exit.'));
        setHTML('summary', '<div class="stats">' +
          '<div class="stat"><div class="label">Topics</div><div class="value">' + num(topics.length) + '</div></div>' +
          '<div class="stat"><div class="label">Channels</div><div class="value">' + num(nch) + '</div></div>' +
          '<div class="stat"><div class="label">Messages</div><div class="value">' + num(d.total_messages) + '</div></div>' +
          '<div class="stat"><div class="label">Clients</div><div class="value">' + num(d.total_clients) + '</div></div></div>');
        if (!topics.length) { setHTML('topics', '<div class="card empty">This node has no topics.</div>'); return; }
        setHTML('topics', topics.map(function (t) {
          var chans = t.channels || [];
          var rows = chans.map(function (c) {
            return '<tr><td><a href="' + esc(channelURL(t.topic_name, c.channel_name)) + '" data-nav>' + esc(c.channel_name) + '</a>' +
              (c.paused ? ' <span class="badge paused">paused</span>' : '') + '</td>' + statCells(c) + '</tr>';
          }).join('');
          var clients = [];
          chans.forEach(function (c) { (c.clients || []).forEach(function (cl) { clients.push([c, cl]); }); });
          var cRows = clients.map(function (x) {
            var cl = x[1];
            return '<tr><td>' + esc(x[0].channel_name) + '</td><td>' + clientHost(cl) + '</td><td class="wrap">' + esc(cl.user_agent || '–') + '</td>' +
              '<td>' + clientAttrs(cl) + '</td>' + numCell(cl.in_flight_count) + numCell(cl.ready_count) + numCell(cl.finish_count) +
              numCell(cl.requeue_count) + numCell(cl.message_count) + connectedCell(cl) + '</tr>';
          }).join('');
          return '<div class="card flush"><h2><a href="' + esc(topicURL(t.topic_name)) + '" data-nav>' + esc(t.topic_name) + '</a>' +
            (t.paused ? ' <span class="badge paused">paused</span>' : '') +
            '<span class="hint">depth ' + num(t.depth) + ' (' + num(t.memory_depth) + ' + ' + num(t.backend_depth) + ') · ' +
            num(t.message_count) + ' messages · ' + chans.length + (chans.length === 1 ? ' channel' : ' channels') + '</span>' +
            (canTomb ? ' <button class="btn-link" data-tombstone="' + esc(t.topic_name) + '">✘ tombstone</button>' : '') + '</h2>' +
            (rows ? '<div class="table-wrap"><table class="data"><thead><tr>' + statHeaders().replace('NSQd Host', 'Channel') + '</tr></thead><tbody>' + rows + '</tbody></table></div>'
              : '<div class="empty">No channels.</div>') +
            (cRows ? '<h3 class="subhead">Client connections</h3><div class="table-wrap"><table class="data"><thead><tr><th>Channel</th><th>Client Host</th><th>User-Agent</th><th>Attributes</th>' +
              '<th class="num">In-Flight</th><th class="num">Ready Count</th><th class="num">Finished</th><th class="num">Requeued</th>' +
              '<th class="num">Messages</th><th class="num">Connected</th></tr></thead><tbody>' + cRows + '</tbody></table></div>' : '') +
            '</div>';
        }).join(''));
      });
    }, REFRESH_MS);
    return p;
  }

  function counterView() {
    document.title = 'Counter · nsqadmin';
    app.innerHTML = '<h1>Messages processed</h1><div class="banners" id="banners"></div>' +
      '<div class="card counter-hero"><div class="big" id="counter">–</div><div class="caption" id="counter-caption">messages delivered into channels, across the cluster</div></div>' +
      chartCard('chart-rate', 'Messages per second', 'published, whole cluster');
    var shown = null, anim = null;
    function animateTo(target) {
      var el = $('#counter');
      if (!el) { return; }
      if (shown === null) { shown = target; el.textContent = num(target); return; }
      var from = shown, start = performance.now(), dur = 900;
      if (anim) { cancelAnimationFrame(anim); }
      function step(now) {
        var k = Math.min(1, (now - start) / dur);
        shown = Math.round(from + (target - from) * (1 - Math.pow(1 - k, 3)));
        el.textContent = num(shown);
        if (k < 1) { anim = requestAnimationFrame(step); }
      }
      anim = requestAnimationFrame(step);
    }
    var p = poll(function () {
      return Promise.all([api('GET', '/counter'), api('GET', '/history')]).then(function (rs) {
        var r = rs[0], hr = rs[1];
        setBanners($('#banners'), [[r, 'the message counts']]);
        if (r.ok) {
          var total = 0, chans = 0, nodes = {};
          Object.keys(r.data.stats || {}).forEach(function (k) {
            var s = r.data.stats[k];
            total += s.message_count;
            chans++;
            nodes[s.node] = true;
          });
          animateTo(total);
          var nn = Object.keys(nodes).length;
          setHTML('counter-caption', 'messages delivered into ' + chans + (chans === 1 ? ' channel' : ' channels') + ' on ' +
            nn + (nn === 1 ? ' node' : ' nodes'));
        }
        var h = hr.ok ? hr.data : { times: [], series: null };
        var s = h.series || {};
        updateChart('chart-rate', h.times || [], [{ label: 'published', values: s.rate, color: COLORS.rate, fmt: rate, unit: 'msg/s' }]);
      });
    }, Math.min(REFRESH_MS, 2000));
    return { stop: function () { p.stop(); if (anim) { cancelAnimationFrame(anim); } } };
  }

  function lookupView() {
    document.title = 'Lookup · nsqadmin';
    if (!NSQLOOKUPD.length) {
      app.innerHTML = '<h1>Lookup</h1><div class="banner info">nsqadmin is not configured with nsqlookupd hosts: it was started with ' +
        '<code>--nsqd-http-address</code>, so there is no topic registry to show.</div>';
      return { stop: function () {} };
    }
    app.innerHTML = '<h1>Lookup</h1><div class="banners" id="banners"></div>' +
      (IS_ADMIN ? '<div class="card"><h2>Create topic / channel</h2>' +
        '<form class="inline" id="create"><label>Topic<input type="text" name="topic" required placeholder="topic name" autocomplete="off"></label>' +
        '<label>Channel<input type="text" name="channel" placeholder="optional" autocomplete="off"></label>' +
        '<button class="btn btn-primary" type="submit">Create</button></form>' +
        '<p class="muted small" style="margin:10px 0 0">The topic is registered in every nsqlookupd; a channel is also created on the nsqds that have the topic. ' +
        'An nsqd creates the topic itself when it is first published to.</p></div>' : '') +
      '<div class="grid-2 stack"><div class="card"><h2>nsqlookupd hosts</h2><ul class="plain">' +
      NSQLOOKUPD.map(function (l) { return '<li><code>' + esc(l) + '</code></li>'; }).join('') + '</ul></div>' +
      '<div class="card" id="registered"><h2>Registered topics</h2><div class="loading">Loading…</div></div></div>' +
      '<div class="card" id="inactive"><h2>Inactive topics</h2><div class="loading">Loading…</div></div>';
    var form = $('#create');
    if (form) {
      form.addEventListener('submit', function (e) {
        e.preventDefault();
        var topic = form.topic.value.trim(), channel = form.channel.value.trim();
        var what = channel ? 'channel “' + channel + '” on topic “' + topic + '”' : 'topic “' + topic + '”';
        runAction({
          title: 'Create ' + (channel ? 'channel' : 'topic') + '?', body: 'Register ' + what + ' in every nsqlookupd.', label: 'Create',
          done: 'Created ' + what, method: 'POST', path: '/topics', payload: channel ? { topic: topic, channel: channel } : { topic: topic }
        }).then(function (r) {
          if (r && r.ok) { form.reset(); }
          if (r) { p.now(); }
        });
      });
    }
    $('#inactive').addEventListener('click', function (e) {
      var b = e.target.closest('button[data-delete-topic]');
      if (!b) { return; }
      var topic = b.getAttribute('data-delete-topic'), channel = b.getAttribute('data-delete-channel');
      var path = '/topics/' + encodeURIComponent(topic) + (channel ? '/' + encodeURIComponent(channel) : '');
      runAction({
        title: channel ? 'Delete channel?' : 'Delete topic?', label: 'Delete',
        body: channel ? 'Channel “' + channel + '” of topic “' + topic + '” will be removed from nsqlookupd.' : 'Topic “' + topic + '” and its channels will be removed from nsqlookupd.',
        done: 'Deleted ' + (channel ? 'channel ' + channel : 'topic ' + topic), method: 'DELETE', path: path
      }).then(function (r) { if (r) { p.now(); } });
    });
    var p = poll(function () {
      return Promise.all([api('GET', '/topics'), api('GET', '/topics?inactive=true')]).then(function (rs) {
        var all = rs[0], r = rs[1];
        setBanners($('#banners'), [[all, 'the topic list'], [r, 'inactive topics']]);
        if (all.ok) {
          var ts = all.data.topics || [];
          setHTML('registered', '<h2>Registered topics <span class="hint">' + ts.length + '</span></h2>' + (ts.length ?
            '<span class="tags">' + ts.map(function (t) { return '<a class="badge" href="' + esc(topicURL(t)) + '" data-nav>' + esc(t) + '</a>'; }).join('') + '</span>'
            : '<div class="empty">No topics are registered.</div>'));
        }
        if (!r.ok) { return; }
        var topics = r.data.topics || {};
        var names = Object.keys(topics).sort();
        var del = function (t, c) {
          return IS_ADMIN ? ' <button class="btn-link" title="delete" data-delete-topic="' + esc(t) + '"' + (c ? ' data-delete-channel="' + esc(c) + '"' : '') + '>✘</button>' : '';
        };
        setHTML('inactive', '<h2>Inactive topics <span class="hint">registered in nsqlookupd with no nsqd producing them</span></h2>' +
          (names.length ? '<ul class="tree">' + names.map(function (t) {
            var chans = topics[t] || [];
            return '<li><a href="' + esc(topicURL(t)) + '" data-nav>' + esc(t) + '</a>' + del(t) +
              (chans.length ? '<ul>' + chans.map(function (c) { return '<li>' + esc(c) + del(t, c) + '</li>'; }).join('') + '</ul>' : '') + '</li>';
          }).join('') + '</ul>' : '<div class="empty">No inactive topics.</div>'));
      });
    }, REFRESH_MS);
    return p;
  }

  // ---- routing --------------------------------------------------------------------

  var routes = [
    [/^\/?$/, topicsView, 'topics'],
    [/^\/topics\/?$/, topicsView, 'topics'],
    [/^\/topics\/([^/]+)\/?$/, topicView, 'topics'],
    [/^\/topics\/([^/]+)\/([^/]+)\/?$/, channelView, 'topics'],
    [/^\/nodes\/?$/, nodesView, 'nodes'],
    [/^\/nodes\/([^/]+)\/?$/, nodeView, 'nodes'],
    [/^\/counter\/?$/, counterView, 'counter'],
    [/^\/lookup\/?$/, lookupView, 'lookup']
  ];

  function render() {
    if (current) { current.stop(); current = null; }
    $('#modal').hidden = true;
    var path = location.pathname;
    if (BASE && path.indexOf(BASE) === 0) { path = path.slice(BASE.length); }
    for (var i = 0; i < routes.length; i++) {
      var m = routes[i][0].exec(path);
      if (!m) { continue; }
      var args = m.slice(1).map(function (s) { return decodeURIComponent(s); });
      document.querySelectorAll('.mainnav a').forEach(function (a) {
        a.classList.toggle('active', a.getAttribute('data-section') === routes[i][2]);
      });
      current = routes[i][1].apply(null, args);
      if (flash && ++flash.views > 1) { flash = null; }
      return;
    }
    app.innerHTML = '<h1>Not found</h1><div class="banner error">There is no page at <code>' + esc(location.pathname) + '</code>.</div>';
  }

  function navigate(href) {
    history.pushState(null, '', href);
    window.scrollTo(0, 0);
    render();
  }

  document.addEventListener('click', function (e) {
    var a = e.target.closest('a[data-nav]');
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) { return; }
    if (a.origin !== location.origin) { return; }
    e.preventDefault();
    if (a.pathname + a.search !== location.pathname + location.search) { flash = null; }
    navigate(a.pathname + a.search);
  });
  window.addEventListener('popstate', render);
  render();
})();
