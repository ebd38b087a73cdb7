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
    ru: { offline: "Нет связи с сервером виджета. Проверьте интернет и повторите.", kept: " Введённый текст сохранён." },
    en: { offline: "Cannot reach the widget server. Check the connection and try again.", kept: " Your text is kept." }
  };

  // «Текст сохранён» only where there is a text to keep: a draft in this form, or in any open one.
  function offlineText(form) {
    var words = TEXT[lang === "en" ? "en" : "ru"];
    var areas = form ? form.querySelectorAll("textarea") : document.querySelectorAll("form.compose textarea");
    var typed = Array.prototype.some.call(areas, function (area) { return area.value.trim() !== ""; });
    return words.offline + (typed ? words.kept : "");
  }

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
  // The send form's error line, for widget-media.js too (it loads first, and calls this only later, on events).
  Bridge.formNotice = function (form, text) { showFormNotice(form, text); };
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
      showFormError(form, "<p>" + offlineText(form) + "</p>");
      return;
    }
    var banner = document.getElementById("olchat-offline");
    if (banner) { banner.textContent = offlineText(null); banner.hidden = false; }
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
    // A row's buttons name only what differs from their row (phone) and the frame (card): fewer bytes per row.
    var li = button.closest("li.phone");
    var detail = {
      line: button.getAttribute("data-for-line"), phone: phoneOf(button),
      entity_type: button.getAttribute("data-entity-type") || body.getAttribute("data-entity-type"),
      entity_id: button.getAttribute("data-entity-id") || body.getAttribute("data-entity-id"),
      b24Chat: button.getAttribute("data-b24-chat")
    };
    if (detail.line === null && li) { detail.line = li.getAttribute("data-for-line"); }
    if (action === "open-chat") { Bridge.openChat(detail); }
    else if (action === "open-app") { Bridge.openApp(detail); }
    else if (action === "close-panel") {
      var panel = button.closest(".panel");
      if (panel) { closePanel(panel); } else { var f = button.closest("form.compose"); if (f) { f.remove(); } }
      Bridge.fit();
    }
    else if (action === "reload") { window.location.reload(); }
  });

  // ------------------------------------------------------------------ sending safely, drafts, keyboard
  // A message is never lost or doubled through the UI:
  // - the browser never submits an hx- form itself (that would navigate the frame, the text in
  //   the URL): htmx sends it, and a click on a form htmx has not wired yet (it does so in its
  //   settle step, 20 ms after the swap) is simply dropped;
  // - an over-long text is refused before it is sent, with a counter, never cut;
  // - a send form whose row is re-rendered (a line change, a refresh, a row loading its status)
  //   moves, text and request in flight included, into the new row;
  // - a send form closed with text in it keeps the text for the next «Написать в чат».
  var drafts = {};                    // phone -> text of a closed send form
  var opener = {};                    // phone -> data-action of the button that filled its panel
  var holder = null;                  // send forms waiting for their re-rendered row

  function textLength(value) { return Array.from(value.replace(/\r\n/g, "\n")).length; }
  function rowOf(phone) { return document.querySelector('#olchat-phones li.phone[data-phone="' + phone + '"]'); }
  function phoneOf(elt) {
    if (!elt || !elt.getAttribute) { return null; }
    if (elt.getAttribute("data-for-phone")) { return elt.getAttribute("data-for-phone"); }
    var li = elt.closest ? elt.closest("li.phone") : null;
    return li ? li.getAttribute("data-phone") : null;
  }

  // The counter, shown near and past the limit; true when the text is over it.
  function updateCounter(textarea) {
    var form = textarea.closest("form.compose");
    var max = Number(textarea.getAttribute("data-max")) || 4096;
    var n = textLength(textarea.value);
    var counter = form ? form.querySelector("[data-counter]") : null;
    if (counter) {
      counter.textContent = n + " / " + max;
      counter.hidden = n < Math.floor(max * 9 / 10);
      counter.classList.toggle("counter-over", n > max);
    }
    if (n > max) { textarea.setAttribute("aria-invalid", "true"); } else { textarea.removeAttribute("aria-invalid"); }
    return n > max;
  }

  function showFormNotice(form, text) {
    var note = form.querySelector(".notice") || document.createElement("p");
    note.className = "notice notice-error";
    note.setAttribute("role", "alert");
    note.setAttribute("data-notice", "error");
    note.textContent = text;
    if (!note.parentNode) { form.querySelector(".compose-actions").before(note); }
    Bridge.fit();
  }

  document.addEventListener("input", function (evt) {
    if (evt.target.matches && evt.target.matches("form.compose textarea")) { updateCounter(evt.target); }
  });

  // Capture phase: runs before htmx's own submit handler on the form.
  document.addEventListener("submit", function (evt) {
    var form = evt.target;
    if (!form || !form.hasAttribute || !(form.hasAttribute("hx-post") || form.hasAttribute("hx-get"))) { return; }
    evt.preventDefault();  // htmx sends it; the browser never does
    var refuse = !!form.closest(".htmx-added");  // swapped in, not wired yet: no handler of ours would see it
    if (!refuse && form.matches("form.compose")) {
      var textarea = form.querySelector("textarea[name=text]");
      var blank = !textarea || !textarea.value.trim();
      // A file or a recording needs no text (widget-media.js marks the form that carries one).
      if (blank && form.querySelector('[data-notice="ok"]') && !form.hasAttribute("data-has-media")) {
        refuse = true;  // the form that says «Сообщение отправлено»: a late click of a burst, not a new message
      } else if (textarea && updateCounter(textarea)) {
        refuse = true;
        showFormNotice(form, textarea.getAttribute("data-too-long"));
        textarea.focus();
      }
    }
    if (refuse) { evt.stopPropagation(); }
  }, true);

  function rememberDraft(form) {
    var textarea = form.querySelector("textarea[name=text]");
    var phone = form.getAttribute("data-for-phone");
    if (phone && textarea && textarea.value.trim()) { drafts[phone] = textarea.value; }
  }

  function closePanel(panel) {
    var li = panel.closest("li.phone");
    var form = panel.querySelector("form.compose");
    if (form) { rememberDraft(form); }
    panel.innerHTML = "";
    Bridge.fit();
    if (li) {
      var back = li.querySelector('[data-action="' + (opener[li.getAttribute("data-phone")] || "write") + '"]');
      (back && !back.disabled ? back : li).focus();
    }
  }

  // Before a swap: forms whose row is about to be replaced wait in a hidden holder (still in the
  // document, so a send in flight lands there); a form whose panel gets other content keeps its text.
  var lostFocus = null;               // {phone, action} of a focused control whose row is re-rendered

  function keepForms(target) {
    if (!target || !target.querySelectorAll) { return; }
    var active = document.activeElement;
    if (active && active !== body && target.contains(active)) {
      var li0 = active.closest("li.phone");
      if (li0 && target.contains(li0)) {
        lostFocus = { phone: li0.getAttribute("data-phone"),
                      action: active === li0 ? "row" : active.matches("textarea") ? "text" : active.getAttribute("data-action") };
      }
    }
    var forms = target.querySelectorAll("li.phone form.compose");
    for (var i = 0; i < forms.length; i++) {
      var li = forms[i].closest("li.phone");
      if (target.contains(li)) {
        if (!holder) { holder = document.createElement("div"); holder.id = "olchat-drafts"; holder.hidden = true; body.appendChild(holder); }
        holder.appendChild(forms[i]);
      } else {
        rememberDraft(forms[i]);
      }
    }
  }

  // After a swap: each waiting form goes into its row's empty panel; every send form in a row
  // sends on the row's line (the answer to a send made before a line change names the old one).
  function placeForms() {
    var forms = holder ? holder.querySelectorAll("form.compose") : [];
    for (var i = 0; i < forms.length; i++) {
      var li = rowOf(forms[i].getAttribute("data-for-phone"));
      if (!li) { continue; }
      var panel = li.querySelector(".panel");
      if (!panel && !li.hasAttribute("data-checking")) {
        // The row settled without WhatsApp actions (no line can check it now): the draft stays in
        // sight all the same; a send from it gets the server's reason.
        panel = document.createElement("div");
        panel.className = "panel";
        li.appendChild(panel);
      }
      if (!panel || panel.firstElementChild) { continue; }
      panel.appendChild(forms[i]);
      Bridge.fit();
    }
    if (lostFocus && (!document.activeElement || document.activeElement === body)) {
      var again = rowOf(lostFocus.phone);
      var elt = !again ? null : lostFocus.action === "row" ? again
        : again.querySelector(lostFocus.action === "text" ? "form.compose textarea" : '[data-action="' + lostFocus.action + '"]');
      if (again) { (elt || again).focus(); lostFocus = null; }
    }
    var placed = document.querySelectorAll("#olchat-phones li.phone form.compose");
    for (var j = 0; j < placed.length; j++) {
      var line = placed[j].closest("li.phone").getAttribute("data-for-line");
      if (line && placed[j].getAttribute("data-for-line") !== line) {
        placed[j].setAttribute("data-for-line", line);
        placed[j].querySelector("input[name=line]").value = line;
      }
    }
  }

  document.addEventListener("htmx:beforeSwap", function (evt) { if (evt.detail.shouldSwap) { keepForms(evt.detail.target); } });
  document.addEventListener("htmx:oobBeforeSwap", function (evt) { keepForms(evt.detail.target); });
  document.addEventListener("htmx:afterSwap", placeForms);
  document.addEventListener("htmx:oobAfterSwap", placeForms);
  document.addEventListener("htmx:afterSettle", placeForms);

  document.addEventListener("htmx:beforeRequest", function (evt) {
    var elt = evt.detail.elt;
    var action = elt && elt.getAttribute ? elt.getAttribute("data-action") : null;
    if (action === "write" || action === "history") { opener[phoneOf(elt)] = action; }
  });

  // Focus follows the operator's work: the first phone after «Отобразить виджет», the text
  // after «Написать в чат», the row after a send (the text again when the send was refused).
  document.addEventListener("htmx:afterRequest", function (evt) {
    // detail.elt is where the event fired: an ancestor when the requesting element was swapped away.
    var elt = (evt.detail.requestConfig && evt.detail.requestConfig.elt) || evt.detail.elt;
    if (!elt || !elt.getAttribute) { return; }
    var action = elt.getAttribute("data-action");
    if (action === "show-widget") {
      var first = document.querySelector("#olchat-phones li.phone");
      if (first) { first.focus(); }
      return;
    }
    var phone = phoneOf(elt);
    var li = phone ? rowOf(phone) : null;
    // The app's chat view has one send form and no rows: after a send the operator writes on.
    var form = li ? li.querySelector("form.compose")
                  : phone ? document.querySelector('.chat-view form.compose[data-for-phone="' + phone + '"]') : null;
    if (!form) { return; }
    var textarea = form.querySelector("textarea[name=text]");
    if (action === "write") {
      if (drafts[phone] && !textarea.value) { textarea.value = drafts[phone]; updateCounter(textarea); }
      delete drafts[phone];
      textarea.focus();
    } else if (elt.matches("form.compose")) {
      var notice = form.querySelector("[data-notice]");
      var kind = notice ? notice.getAttribute("data-notice") : "error";
      if (kind === "ok") { (li || textarea).focus(); }
      else if (form.querySelector('input[name="confirm"]')) { form.querySelector('button[type="submit"]').focus(); }
      else { textarea.focus(); }
    }
  });

  document.addEventListener("keydown", function (evt) {
    var target = evt.target;
    if (!target || !target.closest) { return; }
    if (evt.key === "Enter" && (evt.ctrlKey || evt.metaKey) && target.matches("form.compose textarea")) {
      evt.preventDefault();
      var form = target.closest("form");
      var button = form.querySelector('button[type="submit"]');
      if (button && button.disabled) { return; }  // a send is in flight
      form.requestSubmit(button || undefined);
      return;
    }
    if (evt.key === "Escape") {
      var li = target.closest("li.phone");
      var panel = li ? li.querySelector(".panel") : null;
      if (panel && panel.firstElementChild) { evt.preventDefault(); closePanel(panel); }
    }
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

  // ------------------------------------------------------------------ message templates (issue 13)
  // The picker is the browser's own suggestion list on a search field; Enter there (or «Вставить шаблон»,
  // or picking a suggestion) asks the server to fill the text: it never submits the send form. What the
  // template left open (data-open-variable) keeps the send refused until the text no longer holds it.
  function openVariables(form) {
    var textarea = form.querySelector("textarea[name=text]");
    var marks = form.querySelectorAll("[data-open-variable]");
    var open = [];
    for (var i = 0; i < marks.length; i++) {
      var token = marks[i].getAttribute("data-open-variable");
      var still = !!textarea && textarea.value.indexOf(token) !== -1;
      marks[i].classList.toggle("resolved", !still);
      if (still) { open.push(token); }
    }
    return open;
  }

  function updateOpenVariables(form) {
    var notice = form.querySelector("[data-unresolved-notice]");
    if (!notice) { return false; }
    var open = openVariables(form);
    var textarea = form.querySelector("textarea[name=text]");
    var button = form.querySelector('button[type="submit"]');
    notice.hidden = open.length === 0;
    if (button && !form.classList.contains("htmx-request")) { button.disabled = open.length > 0; }
    if (textarea && open.length) { textarea.setAttribute("aria-invalid", "true"); }
    return open.length > 0;
  }

  function selectFirstOpen(form) {
    var textarea = form.querySelector("textarea[name=text]");
    var open = openVariables(form);
    if (!textarea) { return; }
    textarea.focus();
    if (open.length) {
      var at = textarea.value.indexOf(open[0]);
      textarea.setSelectionRange(at, at + open[0].length);  // typing replaces it
    }
  }

  function insertTemplate(picker) {
    var form = picker.closest("form.compose");
    var button = form ? form.querySelector('[data-action="insert-template"]') : null;
    if (button && picker.value.trim()) { button.click(); }
  }

  document.addEventListener("input", function (evt) {
    var target = evt.target;
    if (!target.matches) { return; }
    if (target.matches("form.compose textarea")) { updateOpenVariables(target.closest("form.compose")); }
    // A suggestion picked from the list (Chromium, Firefox: insertReplacementText; Safari: no inputType).
    if (target.matches("[data-template-picker]") && (evt.inputType === "insertReplacementText" || !evt.inputType)) {
      var options = document.getElementById(target.getAttribute("list"));
      var exact = options && Array.prototype.some.call(options.options, function (o) { return o.value === target.value; });
      if (exact) { insertTemplate(target); }
    }
  });

  document.addEventListener("keydown", function (evt) {
    if (evt.key === "Enter" && evt.target.matches && evt.target.matches("[data-template-picker]")) {
      evt.preventDefault();  // Enter in a field of the form would submit the message
      insertTemplate(evt.target);
    }
  });

  document.addEventListener("submit", function (evt) {
    var form = evt.target;
    if (form && form.matches && form.matches("form.compose") && updateOpenVariables(form)) {
      evt.preventDefault();
      evt.stopPropagation();
      selectFirstOpen(form);
    }
  }, true);

  document.addEventListener("htmx:afterRequest", function (evt) {
    var elt = (evt.detail.requestConfig && evt.detail.requestConfig.elt) || evt.detail.elt;
    if (!elt || !elt.getAttribute || elt.getAttribute("data-action") !== "insert-template") { return; }
    var phone = elt.getAttribute("data-for-phone");
    var form = document.querySelector('form.compose[data-for-phone="' + phone + '"]');
    if (!form) { return; }
    var textarea = form.querySelector("textarea[name=text]");
    if (textarea) { updateCounter(textarea); }
    if (updateOpenVariables(form)) { selectFirstOpen(form); }
    else if (textarea) { textarea.focus(); textarea.setSelectionRange(textarea.value.length, textarea.value.length); }
    Bridge.fit();
  });

  if (mode === "bitrix" && typeof window.BX24 !== "undefined") {
    window.BX24.init(start);
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
