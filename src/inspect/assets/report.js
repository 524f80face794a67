// The training report: hovering a chart point or a histogram bar shows its
// numbers (they are in the element's data attributes and its <title>).
(function () {
  'use strict';
  function short(v) { const x = Number(v); return Number.isFinite(x) ? String(Number(x.toPrecision(4))) : v; }
  function text(el) {
    const d = el.dataset;
    if (d.count !== undefined) {
      const s = el.ownerSVGElement.dataset, i = Array.prototype.indexOf.call(el.parentNode.querySelectorAll('rect.tg-bar'), el);
      const lo = Number(s.lo) + i * Number(s.step);
      return '[' + short(lo) + ', ' + short(lo + Number(s.step)) + '): ' + d.count;
    }
    const g = el.closest('g.tg-series').dataset;
    return g.name + '\nepoch ' + short(d.x) + ': ' + d.y;
  }
  document.addEventListener('DOMContentLoaded', () => {
    const tip = document.querySelector('.tg-tooltip');
    if (!tip) return;
    for (const el of document.querySelectorAll('.tg-chart-svg circle, .tg-hist rect.tg-bar')) {
      el.addEventListener('mouseenter', (e) => {
        tip.textContent = text(el);
        tip.hidden = false;
        tip.style.left = e.clientX + 12 + 'px';
        tip.style.top = e.clientY + 12 + 'px';
      });
      el.addEventListener('mouseleave', () => { tip.hidden = true; });
    }
  });
})();
