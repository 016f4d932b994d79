// The pages' only script (the Content-Security-Policy allows no other): copy buttons, the project filter, and
// live updates by polling a JSON endpoint of the page. Text is always set with textContent, never as HTML.
'use strict';

(function () {
  function each(selector, fn, root) {
    Array.prototype.forEach.call((root || document).querySelectorAll(selector), fn);
  }

  // Copy buttons: the value goes to the clipboard; the button says so for a moment.
  each('[data-copy]', function (button) {
    button.addEventListener('click', function () {
      var value = button.getAttribute('data-copy');
      var done = function () {
        var label = button.textContent;
        button.textContent = 'Copied';
        setTimeout(function () { button.textContent = label; }, 1500);
      };
      if (navigator.clipboard && navigator.clipboard.writeText) navigator.clipboard.writeText(value).then(done, function () {});
    });
  });

  // A filter box narrows a list to the items whose data-text contains what was typed.
  each('input[data-filter]', function (input) {
    var list = document.getElementById(input.getAttribute('data-filter'));
    if (!list) return;
    input.addEventListener('input', function () {
      var needle = input.value.trim().toLowerCase();
      each('li[data-text]', function (li) {
        li.hidden = needle !== '' && li.getAttribute('data-text').indexOf(needle) < 0;
      }, list);
    });
  });

  // "Only the projects selected below" enables the project picker; "All projects" disables it.
  each('input[type=radio][name=mode]', function (radio) {
    var picker = document.getElementById('project-picker');
    if (!picker) return;
    var sync = function () {
      var selected = document.querySelector('input[type=radio][name=mode][value=SELECTED_PROJECTS]');
      picker.disabled = !(selected && selected.checked);
    };
    radio.addEventListener('change', sync);
    sync();
  });

  function setText(root, field, text) {
    each('[data-field="' + field + '"]', function (el) { el.textContent = text; }, root);
  }
  function lag(seconds) { return seconds === null || seconds === undefined ? '—' : seconds + ' s'; }

  var updaters = {
    // A mirror's home page: a new state reloads the page (it shows other things); progress moves in place.
    mirror_home: function (box, data) {
      if (data.state !== box.getAttribute('data-live-state')) return false;
      setText(document, 'headline', data.headline);
      setText(document, 'detail', data.detail);
      setText(document, 'counts', data.synced + ' of ' + data.total);
      each('progress[data-field=progress]', function (p) {
        p.max = Math.max(data.total, 1);
        p.value = data.total === 0 && data.state === 'SYNCHRONIZED' ? 1 : data.synced;
      });
      var error = document.querySelector('[data-field=error]');
      if (error) {
        error.hidden = !data.error;
        if (data.error) {
          setText(error, 'error-code', data.error.code);
          setText(error, 'error-message', data.error.message);
          setText(error, 'error-cause', data.error.cause || 'See the Troubleshooting table in the documentation.');
          setText(error, 'error-fix', data.error.fix || 'The mirror retries on its own.');
        }
      }
      setText(document, 'farm-member', data.farm.member ? 'yes' : 'no');
      setText(document, 'farm-ready', data.farm.ready ? 'yes' : 'no');
      setText(document, 'farm-role', data.farm.role || '—');
      return true;
    },
    // The Mirrors overview: requests or mirrors coming or going reload; counts move in place.
    overview: function (box, data) {
      var signature = data.requests.map(function (r) { return r.id; }).join(',') + '|' + data.mirrors.map(function (m) { return m.id; }).join(',');
      if (signature !== box.getAttribute('data-live-signature')) return false;
      data.mirrors.forEach(function (m) {
        var row = document.querySelector('tr[data-mirror="' + m.id + '"]');
        if (!row) return;
        setText(row, 'summary', m.summary);
        setText(row, 'nodes', m.farm.memberCount + ' (' + m.farm.activeCount + ' active)');
        setText(row, 'lag', lag(m.lagSeconds));
        setText(row, 'synced', String(m.repositories.synced));
        setText(row, 'total', String(m.repositories.total));
        setText(row, 'failing', String(m.repositories.failing.length));
      });
      return true;
    },
    // One mirror's page: a new state or node reloads; its counts and nodes move in place.
    mirror: function (box, m) {
      var signature = m.state + '|' + m.nodes.map(function (n) { return n.id; }).join(',');
      if (signature !== box.getAttribute('data-live-signature')) return false;
      setText(document, 'summary', m.summary);
      var facts = document.querySelector('dl.facts');
      if (facts) {
        setText(facts, 'synced', String(m.repositories.synced));
        setText(facts, 'total', String(m.repositories.total));
        setText(facts, 'lag', lag(m.lagSeconds));
      }
      m.nodes.forEach(function (n) {
        var row = document.querySelector('tr[data-node="' + n.id + '"]');
        if (!row) return;
        setText(row, 'state', n.state);
        setText(row, 'role', n.role);
        setText(row, 'connection', n.connection);
        setText(row, 'synced', String(n.repositories.synced));
        setText(row, 'total', String(n.repositories.total));
        setText(row, 'lag', lag(n.lagSeconds));
      });
      return true;
    },
  };

  each('[data-live]', function (box) {
    var url = box.getAttribute('data-live');
    var kind = box.getAttribute('data-live-kind') || 'mirror_home';
    var update = updaters[kind];
    if (!update) return;
    var poll = function () {
      fetch(url, { credentials: 'same-origin', headers: { accept: 'application/json' } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (data && !update(box, data)) { window.location.reload(); return; }
          setTimeout(poll, 1000);
        }, function () { setTimeout(poll, 3000); });
    };
    setTimeout(poll, 1000);
  });
})();
