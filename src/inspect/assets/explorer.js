// The graph explorer: steps through the backward sweep of a recorded graph.
// Each .tg-explorer element holds the Graphviz SVG (node groups with ids
// "s3"/"t2", edge groups "e_<to>_<k>") and a JSON block written by tapegrad:
// the nodes with their numbers, and the sweep as steps, each the trace lines
// of one swept node. Position 0 is "forward done", 1 the seed, 1 + i the
// i-th swept node.
(function () {
  'use strict';
  // Numbers as tapegrad prints them (fmt_num).
  function num(v) { return typeof v === 'string' ? Number(v) : v; }
  function fmt(v) {
    v = num(v);
    if (v === 0) return '0';
    if (Number.isNaN(v)) return 'nan';
    if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
    const a = Math.abs(v);
    if (a >= 1e-4 && a < 1e6) return v.toFixed(6).replace(/0+$/, '').replace(/\.$/, '');
    return v.toExponential(4);
  }
  function list(a) { return '[' + a.map(fmt).join(', ') + ']'; }
  function summary(s) {
    return s ? 'min ' + fmt(s.min) + '  max ' + fmt(s.max) + '  norm ' + fmt(s.norm) : '-';
  }
  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
  }
  // A diverging blue-white-red colour for v in [-m, m].
  function heatColour(v, m) {
    const t = m > 0 ? Math.max(-1, Math.min(1, v / m)) : 0;
    const r = t < 0 ? Math.round(255 * (1 + t)) : 255, b = t > 0 ? Math.round(255 * (1 - t)) : 255;
    const g = Math.round(255 * (1 - Math.abs(t)));
    return 'rgb(' + r + ',' + g + ',' + b + ')';
  }
  function heatMap(values, shape, label) {
    const rows = shape.length >= 2 ? shape[0] : 1;
    const cols = values.length / rows;
    const cell = Math.max(4, Math.min(22, Math.floor(380 / Math.max(cols, 1))));
    let m = 0;
    for (const v of values) if (Number.isFinite(num(v))) m = Math.max(m, Math.abs(num(v)));
    let s = '<svg class="tg-heat" width="' + cols * cell + '" height="' + rows * cell + '">';
    values.forEach((v, i) => {
      const r = Math.floor(i / cols), c = i % cols;
      s += '<rect x="' + c * cell + '" y="' + r * cell + '" width="' + cell + '" height="' + cell +
        '" fill="' + heatColour(num(v), m) + '"><title>' + label + '[' + r + ',' + c + '] = ' +
        fmt(v) + '</title></rect>';
    });
    return s + '</svg>';
  }

  function Explorer(root) {
    this.root = root;
    const data = JSON.parse(root.querySelector('.tg-data').textContent);
    this.data = data;
    this.nodes = new Map(data.nodes.map((n) => [n.id, n]));
    this.svg = root.querySelector('.tg-graph svg');
    this.svg.removeAttribute('width');
    this.svg.removeAttribute('height');
    this.home = this.svg.getAttribute('viewBox').split(/[\s,]+/).map(Number);
    this.view = this.home.slice();
    this.applyView();
    // What every node expects: one contribution per trace line that names it.
    this.expected = new Map();
    for (const st of data.steps)
      for (const l of st.lines) this.expected.set(l.from, (this.expected.get(l.from) || 0) + 1);
    // The "grad ..." line of each node's label, to show "?" until reached.
    this.gradText = new Map();
    for (const n of data.nodes) {
      const g = this.group(n.id);
      if (!g) continue;
      for (const t of g.querySelectorAll('text'))
        if (t.textContent.startsWith('grad ')) { this.gradText.set(n.id, { el: t, text: t.textContent }); break; }
    }
    this.total = data.steps.length + 1;
    this.pos = 0;
    this.timer = null;
    this.selected = null;
    this.buildTrace();
    this.bind();
    this.render();
  }

  Explorer.prototype.group = function (id) {
    return this.svg.querySelector('#' + CSS.escape(id));
  };

  Explorer.prototype.buildTrace = function () {
    const pre = this.root.querySelector('.tg-trace');
    const d = this.data;
    let h = '<span class="tg-line tg-head"># forward sweep, in creation order</span>';
    for (const l of d.forward) h += '<span class="tg-line" data-node="' + esc(l.node) + '">' + esc(l.text) + '</span>';
    h += '<span class="tg-line tg-head"> </span><span class="tg-line tg-head"># backward sweep, in reverse order: downstream += upstream × local</span>';
    h += '<span class="tg-line" data-pos="1">' + esc(d.seed) + '</span>';
    d.steps.forEach((st, i) => {
      for (const l of st.lines) h += '<span class="tg-line" data-pos="' + (i + 2) + '">' + esc(l.text) + '</span>';
    });
    pre.innerHTML = h;
  };

  Explorer.prototype.bind = function () {
    const q = (c) => this.root.querySelector(c);
    q('.tg-next').addEventListener('click', () => { this.stop(); this.go(this.pos + 1); });
    q('.tg-prev').addEventListener('click', () => { this.stop(); this.go(this.pos - 1); });
    q('.tg-reset').addEventListener('click', () => { this.stop(); this.go(0); });
    q('.tg-play').addEventListener('click', () => this.toggle());
    q('.tg-fit').addEventListener('click', () => { this.view = this.home.slice(); this.applyView(); });
    this.root.addEventListener('pointerdown', () => { Explorer.active = this; });
    for (const n of this.data.nodes) {
      const g = this.group(n.id);
      if (!g) continue;
      g.addEventListener('mouseenter', () => this.info(n.id));
      g.addEventListener('click', (e) => { e.stopPropagation(); this.select(n.id); });
    }
    // Pan with the mouse, zoom with the wheel (around the cursor).
    const pane = q('.tg-graph');
    let drag = null;
    pane.addEventListener('pointerdown', (e) => {
      drag = { x: e.clientX, y: e.clientY, v: this.view.slice() };
      pane.classList.add('tg-dragging');
    });
    window.addEventListener('pointerup', () => { drag = null; pane.classList.remove('tg-dragging'); });
    pane.addEventListener('pointermove', (e) => {
      if (!drag) return;
      const r = this.svg.getBoundingClientRect();
      const k = Math.max(drag.v[2] / r.width, drag.v[3] / r.height);
      this.view[0] = drag.v[0] - (e.clientX - drag.x) * k;
      this.view[1] = drag.v[1] - (e.clientY - drag.y) * k;
      this.applyView();
    });
    pane.addEventListener('wheel', (e) => {
      e.preventDefault();
      const r = this.svg.getBoundingClientRect();
      const f = e.deltaY > 0 ? 1.15 : 1 / 1.15;
      const fx = (e.clientX - r.left) / r.width, fy = (e.clientY - r.top) / r.height;
      const v = this.view;
      const w = v[2] * f, h = v[3] * f;
      this.view = [v[0] + (v[2] - w) * fx, v[1] + (v[3] - h) * fy, w, h];
      this.applyView();
    }, { passive: false });
  };

  Explorer.prototype.applyView = function () {
    this.svg.setAttribute('viewBox', this.view.join(' '));
  };

  Explorer.prototype.toggle = function () {
    if (this.timer) { this.stop(); return; }
    if (this.pos >= this.total) this.go(0);
    this.root.querySelector('.tg-play').textContent = '\u23F8 pause';
    this.timer = setInterval(() => {
      this.go(this.pos + 1);
      if (this.pos >= this.total) this.stop();
    }, 900);
  };
  Explorer.prototype.stop = function () {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.root.querySelector('.tg-play').textContent = '\u25B6 play';
  };

  Explorer.prototype.go = function (p) {
    this.pos = Math.max(0, Math.min(this.total, p));
    this.render();
  };

  // Gradients as far as the sweep has got: for each node, how many
  // contributions have arrived and their running sum (when the numbers are
  // in the data).
  Explorer.prototype.state = function () {
    const acc = new Map();
    const d = this.data;
    if (this.pos >= 1) {
      const r = this.nodes.get(d.root);
      acc.set(d.root, { count: 0, final: true, sum: r.grad ? r.grad.map(num) : null });
    }
    for (let p = 2; p <= this.pos; ++p) {
      for (const l of d.steps[p - 2].lines) {
        let a = acc.get(l.from);
        if (!a) { a = { count: 0, final: false, sum: l.carried ? l.carried.map(() => 0) : null }; acc.set(l.from, a); }
        a.count += 1;
        if (a.sum && l.carried && a.sum.length === l.carried.length) l.carried.forEach((c, i) => { a.sum[i] += num(c); });
        else a.sum = null;
        a.final = a.count === this.expected.get(l.from);
      }
    }
    return acc;
  };

  Explorer.prototype.gradLabel = function (id, a) {
    const n = this.nodes.get(id);
    if (!a) return 'grad ?';
    if (a.final) {
      const t = this.gradText.get(id);
      return t ? t.text : 'grad ' + (n.grad ? list(n.grad) : summary(n.grad_summary));
    }
    const part = ' (' + a.count + ' of ' + this.expected.get(id) + ' uses)';
    if (a.sum && a.sum.length === 1) return 'grad ' + fmt(a.sum[0]) + ' so far' + part;
    if (a.sum && a.sum.length <= 6) return 'grad ' + list(a.sum) + ' so far' + part;
    return 'grad partial' + part;
  };

  Explorer.prototype.render = function () {
    const d = this.data, pos = this.pos, acc = this.state();
    const step = pos >= 2 ? d.steps[pos - 2] : null;
    const current = pos === 1 ? d.root : step ? step.node : null;
    this.root.dataset.pos = String(pos);
    this.root.dataset.current = current || '';
    this.root.querySelector('.tg-counter').textContent =
      pos === 0 ? 'forward done: step 0 of ' + this.total : 'step ' + pos + ' of ' + this.total;
    // Nodes: the one swept, the inputs it sends to, and every grad line.
    for (const n of d.nodes) {
      const g = this.group(n.id);
      if (!g) continue;
      g.classList.toggle('tg-current', n.id === current);
      g.classList.toggle('tg-target', !!step && step.lines.some((l) => l.from === n.id));
      const t = this.gradText.get(n.id);
      if (!t) continue;
      const a = acc.get(n.id);
      t.el.textContent = this.gradLabel(n.id, a);
      t.el.classList.toggle('tg-grad-pending', !a);
      t.el.classList.toggle('tg-grad-partial', !!a && !a.final);
    }
    // Edges: swept ones drawn, this step's in colour, the rest faint.
    const done = new Set(), now = new Set();
    d.steps.forEach((st, i) => {
      for (const l of st.lines) (i + 2 < pos ? done : i + 2 === pos ? now : null)?.add(l.edge);
    });
    for (const g of this.svg.querySelectorAll('g.edge')) {
      g.classList.toggle('tg-edge-current', now.has(g.id));
      g.classList.toggle('tg-edge-pending', !now.has(g.id) && !done.has(g.id));
    }
    // The arithmetic of this step, and the trace in step.
    const arith = this.root.querySelector('.tg-step-arith');
    const head = this.root.querySelector('.tg-step-node');
    if (pos === 0) {
      head.textContent = 'forward sweep done; press next to start the backward sweep';
      arith.textContent = '';
    } else if (pos === 1) {
      head.textContent = 'seed: d' + d.root + '/d' + d.root + ' = 1';
      head.dataset.node = d.root;
      arith.textContent = d.seed;
    } else {
      const n = this.nodes.get(step.node);
      const line = d.forward.find((l) => l.node === step.node);
      head.textContent = 'sweeping ' + (line ? line.text : step.node) + (n.gate ? '   (' + n.op + ': ' + n.gate + ')' : '');
      head.dataset.node = step.node;
      arith.textContent = step.lines.map((l) => l.text).join('\n');
    }
    let first = null;
    for (const s of this.root.querySelectorAll('.tg-trace .tg-line[data-pos]')) {
      const p = Number(s.dataset.pos);
      s.classList.toggle('tg-active', p === pos);
      s.classList.toggle('tg-done', p < pos);
      if (p === pos && !first) first = s;
    }
    if (first) {
      const box = this.root.querySelector('.tg-trace');
      box.scrollTop = Math.max(0, first.offsetTop - box.offsetTop - box.clientHeight / 3);
    }
    if (this.selected) this.info(this.selected);
  };

  Explorer.prototype.select = function (id) {
    const old = this.selected && this.group(this.selected);
    if (old) old.classList.remove('tg-selected');
    this.selected = this.selected === id ? null : id;
    const g = this.selected && this.group(this.selected);
    if (g) g.classList.add('tg-selected');
    this.info(id);
  };

  Explorer.prototype.info = function (id) {
    const n = this.nodes.get(id);
    const a = this.state().get(id);
    const row = (k, v) => '<tr><td>' + k + '</td><td>' + v + '</td></tr>';
    let h = '<table>' + row('node', esc(n.id) + (n.name ? ' (' + esc(n.name) + ')' : ''));
    h += row('op', esc(n.op) + (n.gate ? ': ' + esc(n.gate) : '')) + row('kind', esc(n.kind));
    if (n.tensor && n.shape.length) h += row('shape', '[' + n.shape.join(', ') + '] ' + esc(n.dtype));
    if (n.inputs.length) {
      let ins = n.inputs.map(esc).join(', ');
      if (n.locals.length) ins += '<br>local partials ' + n.locals.map(fmt).join(', ');
      h += row('inputs', ins);
    }
    if (n.uses > 1) h += row('uses', n.uses + ': their gradients add up');
    h += row('value', n.value ? (n.value.length <= 6 ? esc(n.value.length === 1 && !n.tensor ? fmt(n.value[0]) : list(n.value)) : esc(summary(n.value_summary))) : esc(summary(n.value_summary)));
    if (n.grad_summary) {
      const shown = id === this.data.root && this.pos >= 1 ? 'final' : a ? (a.final ? 'final' : 'partial') : null;
      h += row('grad', shown ? esc(this.gradLabel(id, a || { final: true })).replace(/^grad /, '') : '<span class="tg-na">not yet computed</span>');
    }
    if (n.scope) h += row('scope', esc(n.scope));
    if (n.site) h += row('created at', esc(n.site));
    h += '</table>';
    if (n.tensor && n.value && n.value.length > 1) h += '<div>value</div>' + heatMap(n.value, n.shape, esc(n.id));
    if (n.tensor && n.grad && n.grad.length > 1 && (a && a.final || id === this.data.root && this.pos >= 1))
      h += '<div>grad</div>' + heatMap(n.grad, n.shape, 'grad_' + esc(n.id));
    this.root.querySelector('.tg-info').innerHTML = h;
  };

  // The keyboard drives the explorer last clicked (the first one at start).
  Explorer.active = null;
  document.addEventListener('keydown', (e) => {
    const x = Explorer.active;
    if (!x || e.target.closest && e.target.closest('input, textarea')) return;
    if (e.key === 'ArrowRight' || e.key === 'n') { x.stop(); x.go(x.pos + 1); }
    else if (e.key === 'ArrowLeft' || e.key === 'p') { x.stop(); x.go(x.pos - 1); }
    else if (e.key === ' ') { e.preventDefault(); x.toggle(); }
    else if (e.key === 'Home' || e.key === 'r') { x.stop(); x.go(0); }
    else return;
  });
  document.addEventListener('DOMContentLoaded', () => {
    const all = Array.from(document.querySelectorAll('.tg-explorer')).map((el) => new Explorer(el));
    Explorer.active = all[0] || null;
    window.tapegradExplorers = all;
  });
})();
