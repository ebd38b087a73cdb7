/* Install page: tell Bitrix24 the installation is finished once the server registered everything. */
(function () {
  "use strict";
  function finish() {
    if (document.body.getAttribute("data-install") === "ok" && window.BX24) {
      window.BX24.init(function () { window.BX24.installFinish(); });
    }
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", finish); } else { finish(); }
})();
