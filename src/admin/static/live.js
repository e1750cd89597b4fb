/*
 * Live updates (served as /admin/static/live.js): listens to the page's server-sent events
 * (body[data-live]); "html" replaces the inner HTML of the element it names, "reload" reloads the
 * page (the series page when its status changed). EventSource reconnects by itself.
 */
(() => {
  var url = document.body.getAttribute('data-live');
  if (!url || typeof EventSource === 'undefined') {
    return;
  }
  var es = new EventSource(url);
  var n = 0;
  es.addEventListener('html', (e) => {
    var m = JSON.parse(e.data);
    var t = document.getElementById(m.id);
    if (t) {
      t.innerHTML = m.html;
    }
    document.body.setAttribute('data-live-updates', String(++n));
  });
  es.addEventListener('reload', () => {
    es.close();
    location.reload();
  });
  window.addEventListener('pagehide', () => {
    es.close();
  });
})();
