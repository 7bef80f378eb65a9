// Live updates for the coordination-point pages: follows /api/availability/stream (Server-Sent Events; the
// browser sends the sign-in cookie) and updates the cells in place. Events carry a seq per provider × product
// × region; an older seq than the one shown is ignored. "resync" (events were lost) reloads the page.
(function () {
  "use strict";
  var script = document.currentScript;
  var table = document.getElementById("overzicht") || document.getElementById("aanbieder");
  var status = document.getElementById("live-status");
  if (!table || !script) { return; }
  var staleAfterMs = Number(table.dataset.staleAfter || "1440") * 60000;
  var products = (table.dataset.products || "").split(",").filter(Boolean);
  var timeFormat = new Intl.DateTimeFormat("nl-NL", {
    day: "2-digit", month: "2-digit", year: "numeric", hour: "2-digit", minute: "2-digit",
    timeZone: "Europe/Amsterdam"
  });

  function setStatus(state, text) {
    if (status) { status.dataset.status = state; status.textContent = text; }
  }
  function localTime(stamp) { return timeFormat.format(new Date(stamp)).replace(",", ""); }
  function isStale(stamp) { return Date.now() - Date.parse(stamp) > staleAfterMs; }
  function find(attribute, value) {
    return table.querySelector("[" + attribute + '="' + CSS.escape(value) + '"]');
  }
  function flash(element) {
    element.classList.remove("gewijzigd");
    void element.offsetWidth;  // restart the highlight animation
    element.classList.add("gewijzigd");
  }
  function newer(element, seq) { return Number(element.dataset.seq || "0") < seq; }
  function figure(element, free, total) {
    element.textContent = "";
    var f = document.createElement("span"); f.className = "free"; f.textContent = String(free);
    var t = document.createElement("span"); t.className = "total"; t.textContent = String(total);
    element.append(f, "/", t);
    element.classList.toggle("vrij", free > 0);
    element.classList.remove("leeg");
  }
  function freshness(element, stamp) {
    element.dataset.lastUpdate = stamp;
    element.textContent = "";
    var time = document.createElement("time"); time.textContent = localTime(stamp);
    element.append(time);
    markStale(element);
  }
  function markStale(element) {
    var stale = isStale(element.dataset.lastUpdate);
    element.classList.toggle("verouderd", stale);
    var label = element.querySelector(".verouderd-label");
    if (element.classList.contains("bijgewerkt") && stale && !label) {
      var span = document.createElement("span"); span.className = "verouderd-label"; span.textContent = "verouderd";
      element.append(" ", span);
    } else if (!stale && label) { label.remove(); }
  }

  function overviewRow(row) {
    var key = row.org_id + "|" + row.region;
    var tr = find("data-row", key);
    if (tr) { return tr; }
    var empty = table.querySelector("tbody tr.geen");
    if (empty) { empty.remove(); }
    tr = document.createElement("tr"); tr.dataset.row = key;
    var th = document.createElement("th"); th.scope = "row";
    var a = document.createElement("a"); a.href = "/overzicht/aanbieder/" + encodeURIComponent(row.org_id);
    a.textContent = row.name || row.organization; th.append(a);
    var region = document.createElement("td"); region.textContent = row.region;
    tr.append(th, region);
    products.forEach(function (code) {
      var td = document.createElement("td"); td.className = "cijfer leeg"; td.dataset.cell = key + "|" + code;
      td.textContent = "–"; tr.append(td);
    });
    var fresh = document.createElement("td"); fresh.className = "bijgewerkt"; fresh.dataset.freshness = key;
    tr.append(fresh);
    table.querySelector("tbody").append(tr);
    return tr;
  }

  function onAvailability(row) {
    if (table.id === "overzicht") {
      if (products.indexOf(row.product) < 0) { return; }
      overviewRow(row);
      var key = row.org_id + "|" + row.region;
      var cell = find("data-cell", key + "|" + row.product);
      if (!cell || !newer(cell, row.seq)) { return; }
      cell.dataset.seq = String(row.seq);
      cell.dataset.lastUpdate = row.last_update;
      figure(cell, row.free, row.total);
      cell.title = row.free + " vrij, " + row.occupied + " bezet, " + row.reserved + " gereserveerd, " +
        row.unavailable + " niet beschikbaar; bijgewerkt " + localTime(row.last_update);
      markStale(cell);
      flash(cell);
      var fresh = find("data-freshness", key);
      if (fresh && (!fresh.dataset.lastUpdate || fresh.dataset.lastUpdate < row.last_update)) {
        freshness(fresh, row.last_update);
      }
    } else {
      var tr = find("data-detail", row.org_id + "|" + row.region + "|" + row.product);
      if (!tr) { window.location.reload(); return; }
      if (!newer(tr, row.seq)) { return; }
      tr.dataset.seq = String(row.seq);
      ["free", "occupied", "reserved", "unavailable", "total"].forEach(function (name) {
        var td = tr.querySelector('[data-field="' + name + '"]');
        if (td) { td.textContent = String(row[name]); }
      });
      freshness(tr.querySelector(".bijgewerkt"), row.last_update);
      flash(tr);
    }
    var stand = document.getElementById("stand");
    if (stand) { stand.textContent = localTime(new Date().toISOString()); }
  }

  function onTotals(total) {
    var cell = find("data-total", total.region + "|" + total.product);
    if (!cell || !newer(cell, total.seq)) { return; }
    cell.dataset.seq = String(total.seq);
    figure(cell, total.free, total.total);
    flash(cell);
  }

  setInterval(function () {
    table.querySelectorAll("[data-last-update]").forEach(markStale);
  }, 30000);

  var source = new EventSource(script.dataset.stream);
  source.addEventListener("ready", function () { setStatus("verbonden", "Live: verbonden"); });
  source.addEventListener("availability", function (e) { onAvailability(JSON.parse(e.data)); });
  source.addEventListener("totals", function (e) { onTotals(JSON.parse(e.data)); });
  source.addEventListener("resync", function () { window.location.reload(); });
  source.onerror = function () { setStatus("verbroken", "Live: verbinding verbroken, opnieuw verbinden…"); };
})();
