// The project search of projects/index.html: filters window.airlockProjects
// (projects/index.js, [[name, summary, keywords], ...]) as the reader types,
// and opens with the matches of ?q=TEXT. Everything is inserted as text,
// never as HTML. Without JavaScript the page is the full list.
(function () {
  "use strict";
  var data = window.airlockProjects || [];
  var form = document.getElementById("search");
  var input = document.getElementById("q");
  var hits = document.getElementById("hits");
  var all = document.getElementById("all");
  var found = document.getElementById("found");
  var LIMIT = 200;
  var lowered = data.map(function (p) { return (p[0] + " " + p[1] + " " + p[2]).toLowerCase(); });
  function norm(s) { return s.toLowerCase().replace(/[-_.]+/g, "-"); }
  function show(q) {
    var words = q.toLowerCase().split(/\s+/).filter(Boolean);
    while (hits.firstChild) hits.removeChild(hits.firstChild);
    if (!words.length) { hits.hidden = true; all.hidden = false; found.textContent = ""; return; }
    var exact = [], rest = [];
    for (var i = 0; i < data.length; i++) {
      var text = lowered[i], ok = true;
      for (var w = 0; w < words.length && ok; w++) ok = text.indexOf(words[w]) >= 0 || norm(data[i][0]).indexOf(norm(words[w])) >= 0;
      if (!ok) continue;
      (norm(data[i][0]) === norm(q.trim()) ? exact : rest).push(i);
    }
    var order = exact.concat(rest);
    for (var j = 0; j < order.length && j < LIMIT; j++) {
      var p = data[order[j]], li = document.createElement("li"), a = document.createElement("a");
      a.href = encodeURIComponent(p[0]) + "/index.html";
      a.textContent = p[0];
      li.appendChild(a);
      if (p[1]) { var s = document.createElement("span"); s.className = "summary"; s.textContent = p[1]; li.appendChild(s); }
      hits.appendChild(li);
    }
    found.textContent = order.length + " match" + (order.length === 1 ? "" : "es") + (order.length > LIMIT ? " (the first " + LIMIT + " shown)" : "");
    hits.hidden = false;
    all.hidden = true;
  }
  form.addEventListener("submit", function (e) { e.preventDefault(); });
  form.style.display = "block";
  var q = new URLSearchParams(window.location.search).get("q") || "";
  input.value = q;
  show(q);
  input.addEventListener("input", function () {
    show(input.value);
    if (window.history && window.history.replaceState && window.location.protocol !== "file:") {
      window.history.replaceState(null, "", input.value ? "?q=" + encodeURIComponent(input.value) : window.location.pathname);
    }
  });
})();
