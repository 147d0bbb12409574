// radgate reading worklist: keyboard navigation, live updates (Server-Sent
// Events, then a reload of the table body) announced in the aria-live
// region, and thumbnails that fall back to their alt text.
(function () {
	'use strict';

	// Thumbnails: an image that fails (no pixel data stored, a format the
	// renderer cannot decode) becomes its alt text.
	function broken(img) {
		if (!img.parentNode) return;
		var s = document.createElement('span');
		s.className = 'noimg';
		s.textContent = img.alt || 'No preview';
		img.replaceWith(s);
	}
	document.addEventListener('error', function (e) {
		if (e.target && e.target.tagName === 'IMG') broken(e.target);
	}, true);
	function sweep(root) {
		root.querySelectorAll('img').forEach(function (img) {
			if (img.complete && img.naturalWidth === 0 && img.getAttribute('src')) broken(img);
		});
	}

	function init() {
		sweep(document);
		var table = document.getElementById('worklist');
		if (!table) return;
		var live = document.getElementById('live');
		var conn = document.getElementById('conn');

		function tbody() { return table.tBodies[0]; }
		function rows() { return Array.prototype.slice.call(tbody().querySelectorAll('tr[data-uid]')); }
		var current = null; // the UID of the row with tabindex 0

		function roving(focus) {
			var rs = rows();
			if (!rs.length) return;
			var i = rs.findIndex(function (r) { return r.dataset.uid === current; });
			if (i < 0) i = 0;
			rs.forEach(function (r, j) { r.tabIndex = j === i ? 0 : -1; });
			current = rs[i].dataset.uid;
			if (focus) rs[i].focus();
		}
		function move(delta, absolute) {
			var rs = rows();
			if (!rs.length) return;
			var i = rs.findIndex(function (r) { return r.dataset.uid === current; });
			if (absolute !== undefined) i = absolute < 0 ? rs.length - 1 : absolute;
			else i = Math.max(0, Math.min(rs.length - 1, (i < 0 ? 0 : i + delta)));
			current = rs[i].dataset.uid;
			roving(true);
		}
		table.addEventListener('focusin', function (e) {
			var tr = e.target.closest && e.target.closest('tr[data-uid]');
			if (tr) { current = tr.dataset.uid; roving(false); }
		});
		table.addEventListener('click', function (e) {
			var tr = e.target.closest && e.target.closest('tr[data-uid]');
			if (tr && !e.target.closest('a')) location.href = tr.dataset.href;
		});
		document.addEventListener('keydown', function (e) {
			if (e.altKey || e.ctrlKey || e.metaKey) return;
			var t = e.target;
			if (t && (t.isContentEditable || /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(t.tagName))) return;
			var onRow = t && t.matches && t.matches('tr[data-uid]');
			switch (e.key) {
			// From outside the table, the first key goes to the current row.
			case 'j': case 'ArrowDown': if (onRow) move(1); else roving(true); break;
			case 'k': case 'ArrowUp': if (onRow) move(-1); else roving(true); break;
			case 'Home': if (!onRow) return; move(0, 0); break;
			case 'End': if (!onRow) return; move(0, -1); break;
			case 'Enter':
				if (!onRow) return;
				location.href = t.dataset.href;
				break;
			default: return;
			}
			e.preventDefault();
		});
		roving(false);

		// Live updates.
		function announce(msg) {
			if (!live || !msg) return;
			live.textContent = '';
			setTimeout(function () { live.textContent = msg; }, 50);
		}
		// describe words the changes, one per study (its most telling), for
		// the aria-live region.
		var rank = { priority: 4, created: 3, state: 2, findings: 1 };
		function describe(evs, rs) {
			var byUID = {};
			var order = [];
			evs.forEach(function (ev) {
				if (!ev.uid) return;
				var cur = byUID[ev.uid];
				if (!cur) order.push(ev.uid);
				if (!cur || (rank[ev.kind] || 0) >= (rank[cur.kind] || 0)) byUID[ev.uid] = ev;
			});
			var n = rs.length;
			var msgs = order.reverse().map(function (uid) {
				var ev = byUID[uid];
				var i = rs.findIndex(function (r) { return r.dataset.uid === uid; });
				var row = i >= 0 ? rs[i] : null;
				var what = row ? row.dataset.description : 'A study';
				var where = row ? ', now ' + (i + 1) + ' of ' + n : ', no longer on the list';
				switch (ev.kind) {
				case 'priority': return what + ': priority ' + (ev.to || (row && row.dataset.priority)) + where + '.';
				case 'created': return 'New study: ' + what + (row ? ' (' + row.dataset.priority + ')' : '') + where + '.';
				case 'findings': return what + ': new AI result' + where + '.';
				case 'state': return what + ': ' + (ev.to || 'state changed') + where + '.';
				}
				return what + ': updated.';
			});
			if (!msgs.length && evs.length) msgs.push('Worklist updated.');
			return msgs.slice(0, 3).join(' ');
		}
		var pending = [];
		var timer = null;
		var loading = false;
		function reload() {
			if (loading) { schedule(); return; }
			loading = true;
			var evs = pending;
			pending = [];
			var focused = document.activeElement && table.contains(document.activeElement);
			fetch(table.dataset.rows, { credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
				.then(function (r) { if (!r.ok) throw new Error('HTTP ' + r.status); return r.text(); })
				.then(function (html) {
					var doc = new DOMParser().parseFromString('<table>' + html + '</table>', 'text/html');
					var nb = doc.querySelector('tbody');
					if (!nb) return;
					tbody().replaceWith(document.importNode(nb, true));
					sweep(tbody());
					// Focus in the table stays on its study, wherever it
					// moved; otherwise the keys start again at the top.
					if (!focused) current = null;
					roving(focused);
					table.dataset.updated = String(Date.now());
					announce(describe(evs, rows()));
				})
				.catch(function () { announce('The worklist could not be refreshed; retrying.'); pending = pending.concat(evs); schedule(2000); })
				.finally(function () { loading = false; });
		}
		function schedule(ms) {
			if (timer) return;
			timer = setTimeout(function () { timer = null; reload(); }, ms || 150);
		}
		if (window.EventSource) {
			var es = new EventSource(table.dataset.events);
			es.addEventListener('open', function () {
				// Whatever changed while not connected: reload once.
				if (conn) conn.textContent = 'Live updates: on.';
				table.dataset.live = 'on';
				schedule();
			});
			es.addEventListener('error', function () {
				if (conn) conn.textContent = 'Live updates: reconnecting…';
				table.dataset.live = 'off';
			});
			es.addEventListener('worklist', function (e) {
				try { pending.push(JSON.parse(e.data)); } catch (err) { pending.push({}); }
				schedule();
			});
		} else if (conn) {
			conn.textContent = 'Live updates: not supported by this browser; reloading every minute.';
		}
		// Waiting times age: refresh the rows every minute anyway.
		setInterval(function () { schedule(); }, 60000);
	}
	if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
	else init();
})();
