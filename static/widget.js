/*
 * OLChat widget frame script.
 *
 * 1. Bridge: the few calls the widget makes on its parent window (open a
 *    messenger dialog, open the application, fit the frame, set the field
 *    value) behind one object. Inside Bitrix24 it uses BX24.js; on the debug
 *    page a stand-in logs each call and navigates to the app's chat view.
 * 2. Auth: gets Bitrix24 auth from the parent (BX24.getAuth), trades it for a
 *    short-lived widget token and puts that token in a header on every htmx
 *    request. No cookies: works with third-party cookies blocked.
 * 3. htmx glue: renew the token and repeat a request answered 401, keep typed
 *    text when a send fails, say so when the server cannot be reached.
 */
(function () {
  "use strict";

  var body = document.body;
  var mode = body.getAttribute("data-mode");            // "bitrix" | "debug"
  var lang = body.getAttribute("data-lang") || "ru";
  var TOKEN_HEADER = "X-OLChat-Token";
  var state = { token: null, renewing: null, timer: null };

  var TEXT = {
    ru: { offline: "Нет связи с сервером виджета. Проверьте интернет и повторите — введённый текст сохранён." },
    en: { offline: "Cannot reach the widget server. Check the connection and try again; your text is kept." }
  };

  function inBitrix() {
    return mode === "bitrix" && typeof window.BX24 !== "undefined";
  }

  function appUrl(detail) {
    var params = new URLSearchParams({
      entity_type: detail.entity_type || detail.entityType || body.getAttribute("data-entity-type"),
      entity_id: detail.entity_id || detail.entityId || body.getAttribute("data-entity-id"),
      phone: detail.phone || "",
      line: detail.line || "",
      lang: lang
    });
    return "/app/chat?" + params.toString();
  }

  // ------------------------------------------------------------------ bridge
  var Bridge = {
    log: [],
    record: function (name, args) {
      var entry = { call: name, args: args, at: new Date().toISOString() };
      Bridge.log.push(entry);
      try {
        if (window.parent !== window) {
          window.parent.postMessage({ olchat: "bridge", entry: entry }, window.location.origin);
        }
      } catch (e) { /* a foreign parent: nothing to log to */ }
    },
    openChat: function (detail) {
      if (inBitrix()) {
        if (detail.b24Chat) {
          window.BX24.im.openMessenger("chat" + detail.b24Chat);
        } else {
          window.BX24.openApplication({ view: "chat", line: detail.line, phone: detail.phone,
                                        entity_type: detail.entity_type, entity_id: detail.entity_id });
        }
        return;
      }
      Bridge.record(detail.b24Chat ? "BX24.im.openMessenger" : "BX24.openApplication",
                    detail.b24Chat ? ["chat" + detail.b24Chat] : [detail]);
      if (!detail.b24Chat) { window.location.assign(appUrl(detail)); }
    },
    openApp: function (detail) {
      if (inBitrix()) {
        window.BX24.openApplication({ view: "chat", line: detail.line, phone: detail.phone,
                                      entity_type: detail.entity_type, entity_id: detail.entity_id });
        return;
      }
      Bridge.record("BX24.openApplication", [detail]);
      window.location.assign(appUrl(detail));
    },
    fit: function () {
      if (inBitrix()) { window.BX24.fitWindow(); return; }
      try {
        if (window.parent !== window) {
          window.parent.postMessage({ olchat: "fit", height: document.documentElement.scrollHeight },
                                    window.location.origin);
        }
      } catch (e) { /* nothing to fit */ }
    },
    setValue: function (value) {
      if (body.getAttribute("data-placement-mode") !== "edit") { return; }
      if (inBitrix()) { window.BX24.placement.call("setValue", value); return; }
      Bridge.record("BX24.placement.call", ["setValue", value]);
    }
  };
  window.OLChatBridge = Bridge;

  // ------------------------------------------------------------------ auth
  function postJson(url, payload) {
    return fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(payload),
      credentials: "omit"
    }).then(function (response) {
      if (!response.ok) { throw new Error("auth " + response.status); }
      return response.json();
    });
  }

  function bitrixAuth(refresh) {
    return new Promise(function (resolve, reject) {
      var done = function (auth) { return auth && auth.access_token ? resolve(auth) : reject(new Error("no_auth")); };
      if (refresh) { window.BX24.refreshAuth(done); } else { done(window.BX24.getAuth()); }
    });
  }

  function fetchToken(refresh) {
    if (mode === "bitrix") {
      if (typeof window.BX24 === "undefined") { return Promise.reject(new Error("no_auth")); }
      return bitrixAuth(refresh).then(function (auth) {
        // The card rides along: the server checks the token and reads the card in one request.
        return postJson("/b24/token", {
          access_token: auth.access_token, domain: auth.domain, member_id: auth.member_id,
          expires_in: auth.expires_in, lang: lang,
          entity_type: Number(body.getAttribute("data-entity-type")) || 0,
          entity_id: Number(body.getAttribute("data-entity-id")) || 0
        });
      });
    }
    return postJson("/debug/token", { member_id: body.getAttribute("data-member-id"), lang: lang,
                                      user: new URLSearchParams(window.location.search).get("user") || "admin" });
  }

  function renew(refresh) {
    if (!state.renewing) {
      state.renewing = fetchToken(refresh).then(function (answer) {
        state.token = answer.token;
        clearTimeout(state.timer);
        // Renew a minute before the token expires, so the user never meets an expired one.
        var ms = Math.max((answer.expires_in || 900) - 60, 30) * 1000;
        state.timer = setTimeout(function () { renew(true); }, ms);
        return answer.token;
      }).finally(function () { state.renewing = null; });
    }
    return state.renewing;
  }

  function showNoAuth() {
    var target = document.getElementById("olchat-body");
    if (target) { target.hidden = true; }
    var block = document.getElementById("olchat-noauth");
    if (block) { block.hidden = false; }
    Bridge.fit();
  }

  function start() {
    renew(false).catch(function () {
      // The parent's token may just have expired: ask Bitrix24 for a fresh one once.
      return mode === "bitrix" ? renew(true) : Promise.reject(new Error("no_auth"));
    }).then(function () {
      htmx.trigger(body, "olchat-ready");
    }).catch(showNoAuth);
  }

  // ------------------------------------------------------------------ htmx glue
  document.addEventListener("htmx:configRequest", function (evt) {
    if (state.token) { evt.detail.headers[TOKEN_HEADER] = state.token; }
  });

  document.addEventListener("htmx:beforeSwap", function (evt) {
    var xhr = evt.detail.xhr;
    var elt = evt.detail.requestConfig && evt.detail.requestConfig.elt;
    if (xhr.status === 401 && xhr.getResponseHeader("X-OLChat-Reauth") && elt && !elt.__olchatRetried) {
      // The token expired: renew it quietly and repeat the same request once.
      evt.detail.shouldSwap = false;
      elt.__olchatRetried = true;
      var cfg = evt.detail.requestConfig;
      renew(true).then(function () {
        return htmx.ajax(cfg.verb.toUpperCase(), cfg.path, { source: elt });
      }).catch(showNoAuth).finally(function () { elt.__olchatRetried = false; });
      return;
    }
    var form = elt && elt.closest ? elt.closest("form.compose") : null;
    if (form && xhr.status >= 400) {
      // Never replace a form holding typed text with an error block: show the error inside it.
      evt.detail.shouldSwap = false;
      showFormError(form, xhr.responseText);
    }
  });

  function showFormError(form, html) {
    // DOMParser builds an inert document: nothing in the answer loads or runs; only its text is used.
    var box = new DOMParser().parseFromString(html || "", "text/html");
    var title = box.querySelector("strong");
    var text = box.querySelector("p");
    var note = form.querySelector(".notice") || document.createElement("p");
    note.className = "notice notice-error";
    note.setAttribute("role", "alert");
    note.textContent = (title ? title.textContent + ". " : "") + (text ? text.textContent : "");
    if (!note.parentNode) { form.querySelector(".compose-actions").before(note); }
  }

  document.addEventListener("htmx:sendError", function (evt) {
    var elt = evt.detail.elt;
    var form = elt && elt.closest ? elt.closest("form.compose") : null;
    if (form) {
      showFormError(form, "<p>" + TEXT[lang === "en" ? "en" : "ru"].offline + "</p>");
      return;
    }
    var banner = document.getElementById("olchat-offline");
    if (banner) { banner.textContent = TEXT[lang === "en" ? "en" : "ru"].offline; banner.hidden = false; }
  });

  document.addEventListener("htmx:afterRequest", function (evt) {
    if (evt.detail.successful) {
      var banner = document.getElementById("olchat-offline");
      if (banner) { banner.hidden = true; }
    }
  });

  document.addEventListener("htmx:afterSettle", function () {
    localiseTimes();
    keepHistoryScroll();
    Bridge.fit();
  });

  // History lists are newest last: a freshly loaded list shows its newest message (bottom),
  // and a page of older messages loaded above keeps the messages the user was reading in place.
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var target = evt.detail.target;
    var list = target && target.closest ? target.closest("ol.messages") : null;
    if (list) { list.__olchatFromBottom = list.scrollHeight - list.scrollTop; }
  });

  function keepHistoryScroll() {
    var lists = document.querySelectorAll("ol.messages");
    for (var i = 0; i < lists.length; i++) {
      var list = lists[i];
      if (!list.hasAttribute("data-scrolled")) {
        list.setAttribute("data-scrolled", "1");
        list.scrollTop = list.scrollHeight;
      } else if (typeof list.__olchatFromBottom === "number") {
        list.scrollTop = list.scrollHeight - list.__olchatFromBottom;
        delete list.__olchatFromBottom;
      }
    }
  }

  // Live history (templates/widget/_history_live.html polls every 2 s): no poll while the page is
  // hidden, and after a failed poll the next ones wait longer and longer (up to a minute), so a
  // server or gateway in trouble is not hammered by every open panel. Error answers are never
  // swapped into the poll element: it keeps polling with its last state.
  var live = { failures: 0, until: 0 };

  function isLive(elt) { return !!(elt && elt.hasAttribute && elt.hasAttribute("data-live-history")); }

  function liveFailed() {
    live.failures += 1;
    live.until = Date.now() + Math.min(2000 * Math.pow(2, live.failures), 60000);
  }

  document.addEventListener("htmx:beforeRequest", function (evt) {
    if (isLive(evt.detail.elt) && (document.visibilityState === "hidden" || Date.now() < live.until)) {
      evt.preventDefault();
    }
  });

  document.addEventListener("htmx:beforeSwap", function (evt) {
    var xhr = evt.detail.xhr;
    if (!isLive(evt.detail.requestConfig && evt.detail.requestConfig.elt)) { return; }
    if (xhr.status >= 400) {
      if (!(xhr.status === 401 && xhr.getResponseHeader("X-OLChat-Reauth"))) { liveFailed(); }
      evt.detail.shouldSwap = false;
    } else {
      live.failures = 0;
      live.until = 0;
    }
  });

  document.addEventListener("htmx:sendError", function (evt) { if (isLive(evt.detail.elt)) { liveFailed(); } });

  // A message appended to a list the user reads at its bottom keeps the bottom in view.
  document.addEventListener("htmx:oobBeforeSwap", function (evt) {
    var list = evt.detail.target;
    if (list && list.matches && list.matches("ol.messages")) {
      list.__olchatAtBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    }
  });
  document.addEventListener("htmx:oobAfterSwap", function (evt) {
    var list = evt.detail.target;
    if (list && list.__olchatAtBottom) { list.scrollTop = list.scrollHeight; delete list.__olchatAtBottom; }
    localiseTimes();
    Bridge.fit();
  });

  // Events the server sends in HX-Trigger. htmx adds the requesting element to the event's
  // detail (detail.elt): pass on only the plain fields, a DOM node cannot be posted to the parent.
  function chatDetail(detail) {
    detail = detail || {};
    return { line: detail.line, phone: detail.phone, entity_type: detail.entity_type,
             entity_id: detail.entity_id, b24Chat: detail.b24Chat || detail.b24_chat };
  }
  body.addEventListener("olchat-open-chat", function (evt) { Bridge.openChat(chatDetail(evt.detail)); });
  body.addEventListener("olchat-set-value", function (evt) { Bridge.setValue((evt.detail || {}).value); });

  // Buttons that talk to the parent window rather than to our server.
  document.addEventListener("click", function (evt) {
    var button = evt.target.closest ? evt.target.closest("[data-action]") : null;
    if (!button) { return; }
    var action = button.getAttribute("data-action");
    var detail = {
      line: button.getAttribute("data-for-line"), phone: button.getAttribute("data-for-phone"),
      entity_type: button.getAttribute("data-entity-type"), entity_id: button.getAttribute("data-entity-id"),
      b24Chat: button.getAttribute("data-b24-chat")
    };
    if (action === "open-chat") { Bridge.openChat(detail); }
    else if (action === "open-app") { Bridge.openApp(detail); }
    else if (action === "close-panel") {
      var panel = button.closest(".panel");
      if (panel) { panel.innerHTML = ""; } else { var f = button.closest("form.compose"); if (f) { f.remove(); } }
      Bridge.fit();
    }
    else if (action === "reload") { window.location.reload(); }
  });

  function localiseTimes() {
    var nodes = document.querySelectorAll("time[datetime]:not([data-local])");
    for (var i = 0; i < nodes.length; i++) {
      var d = new Date(nodes[i].getAttribute("datetime"));
      if (!isNaN(d.getTime())) {
        nodes[i].textContent = d.toLocaleString(lang === "en" ? "en-GB" : "ru-RU",
          { day: "2-digit", month: "2-digit", year: "numeric", hour: "2-digit", minute: "2-digit" });
        nodes[i].setAttribute("data-local", "1");
      }
    }
  }

  if (mode === "bitrix" && typeof window.BX24 !== "undefined") {
    window.BX24.init(start);
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
