/* Debug page: size the card frame like Bitrix24 would, and show the widget's BX24 calls. */
(function () {
  "use strict";
  var frame = document.getElementById("card-frame");
  var log = document.getElementById("bridge-log");

  window.addEventListener("message", function (evt) {
    if (evt.origin !== window.location.origin || !evt.data || !evt.data.olchat) { return; }
    if (evt.data.olchat === "fit" && frame) {
      frame.style.height = Math.max(120, Math.min(evt.data.height + 4, 4000)) + "px";
    } else if (evt.data.olchat === "bridge" && log) {
      var item = document.createElement("li");
      item.textContent = evt.data.entry.call + "(" + JSON.stringify(evt.data.entry.args) + ")";
      log.appendChild(item);
    }
  });

  document.addEventListener("click", function (evt) {
    var link = evt.target.closest ? evt.target.closest("a.card-link") : null;
    if (!link) { return; }
    var current = document.querySelector("a.card-link[aria-current]");
    if (current) { current.removeAttribute("aria-current"); }
    link.setAttribute("aria-current", "true");
  });
})();
