/*
 * OLChat send form: files and voice (templates/widget/_compose_media.html).
 *
 * - A file (the button, or dropped onto the form) or a voice recording turns the form's send into a
 *   multipart upload to the file route (data-file-url), the text as its caption; so does a file the
 *   server keeps for the form (after the red-zone question or a failed send: data-attach-held).
 * - Limits and programs are checked here before any byte leaves (the server checks again, by the bytes).
 * - The upload shows its progress (htmx:xhr:progress) in the form's <progress>.
 * - Voice: MediaRecorder; listen to it (a blob: URL, the only blob the page's CSP allows, for <audio>),
 *   delete it or send it; a clear message when the browser gives no microphone.
 * widget.js does the rest (token, keeping the form on errors, one send per key).
 */
(function () {
  "use strict";

  var EXECUTABLE = ("exe com bat cmd msi msp mst scr pif cpl dll sys drv ocx gadget application appref-ms lnk inf reg " +
    "js jse vbs vbe vb wsf wsh wsc ws hta ps1 ps1xml ps2 psc1 psm1 msc msh msh1 msh2 jar apk apks aab xapk dex ipa " +
    "appx appxbundle msix msixbundle sh bash zsh csh ksh run elf so dylib app pkg dmg command scpt workflow deb " +
    "rpm py pyc pyw pl rb php").split(" ");
  var PHOTO_OR_VIDEO = /\.(jpe?g|png|webp|mp4|m4v|mov|3gp|webm|mkv|avi)$/i;

  function attachOf(elt) {
    var form = elt && elt.closest ? elt.closest("form.compose") : null;
    return form ? form.querySelector("[data-attach]") : null;
  }

  function inputOf(attach) { return attach.querySelector("[data-attach-input]"); }

  function chosenFile(attach) {
    var input = inputOf(attach);
    return input && input.files && input.files.length ? input.files[0] : null;
  }

  function hasMedia(attach) {
    return !!(chosenFile(attach) || attach.__olchatVoice || attach.querySelector("[data-attach-held]"));
  }

  // The form sends multipart to the file route while it carries a file; widget.js reads data-has-media.
  function mark(attach) {
    var form = attach.closest("form.compose");
    if (hasMedia(attach)) {
      form.setAttribute("data-has-media", "");
      if (chosenFile(attach) || attach.__olchatVoice) { form.setAttribute("hx-encoding", "multipart/form-data"); }
    } else {
      form.removeAttribute("data-has-media");
      form.removeAttribute("hx-encoding");
    }
  }

  function say(attach, text) {
    window.OLChatBridge.formNotice(attach.closest("form.compose"), text);  // widget.js's, one look for all
  }

  function showChosen(attach, label) {
    var chosen = attach.querySelector("[data-attach-chosen]");
    chosen.querySelector("[data-attach-name]").textContent = label || "";
    chosen.hidden = !label;
  }

  function sizeText(bytes) {
    var mb = bytes / (1024 * 1024);
    var ru = (document.body.getAttribute("data-lang") || "ru") !== "en";
    return mb >= 0.1 ? mb.toFixed(1) + (ru ? " МБ" : " MB") : Math.max(Math.floor(bytes / 1024), 1) + (ru ? " КБ" : " KB");
  }

  // A refusal known before the upload: programs by extension, and the size limit of the file's kind.
  function refusal(attach, file) {
    var parts = file.name.toLowerCase().replace(/[. ]+$/, "").split(".").slice(1);
    if (parts.some(function (p) { return EXECUTABLE.indexOf(p.trim()) >= 0; })) { return attach.getAttribute("data-executable"); }
    var photo = PHOTO_OR_VIDEO.test(file.name) || /^(image\/(jpeg|png|webp)|video\/)/.test(file.type || "");
    if (photo && file.size > Number(attach.getAttribute("data-max-photo"))) { return attach.getAttribute("data-too-large-photo"); }
    if (file.size > Number(attach.getAttribute("data-max-doc"))) { return attach.getAttribute("data-too-large-doc"); }
    return null;
  }

  function dropHeld(attach) {
    var held = attach.querySelector("[data-attach-held]");
    if (held) { held.remove(); }
  }

  function fileChosen(attach) {
    var file = chosenFile(attach);
    if (!file) { mark(attach); return; }
    var why = refusal(attach, file);
    if (why) {
      inputOf(attach).value = "";
      showChosen(attach, "");
      say(attach, why);
    } else {
      clearVoice(attach);
      dropHeld(attach);
      showChosen(attach, attach.getAttribute("data-attached") + ": " + file.name + " (" + sizeText(file.size) + ")");
    }
    mark(attach);
  }

  document.addEventListener("change", function (evt) {
    if (evt.target.matches && evt.target.matches("[data-attach-input]")) { fileChosen(attachOf(evt.target)); }
  });

  // Drag and drop onto the send form.
  document.addEventListener("dragover", function (evt) {
    var attach = attachOf(evt.target);
    if (!attach || !evt.dataTransfer || Array.prototype.indexOf.call(evt.dataTransfer.types, "Files") < 0) { return; }
    evt.preventDefault();
    attach.closest("form.compose").classList.add("drop-here");
  });
  document.addEventListener("dragleave", function (evt) {
    var form = evt.target.closest ? evt.target.closest("form.compose") : null;
    if (form && !form.contains(evt.relatedTarget)) { form.classList.remove("drop-here"); }
  });
  document.addEventListener("drop", function (evt) {
    var attach = attachOf(evt.target);
    if (!attach || !evt.dataTransfer || !evt.dataTransfer.files.length) { return; }
    evt.preventDefault();
    attach.closest("form.compose").classList.remove("drop-here");
    var list = new DataTransfer();
    list.items.add(evt.dataTransfer.files[0]);
    inputOf(attach).files = list.files;
    fileChosen(attach);
  });

  document.addEventListener("click", function (evt) {
    var button = evt.target.closest ? evt.target.closest("[data-attach-remove], [data-voice]") : null;
    if (!button) { return; }
    var attach = attachOf(button);
    if (!attach) { return; }
    if (button.hasAttribute("data-attach-remove")) {
      inputOf(attach).value = "";
      dropHeld(attach);
      clearVoice(attach);
      showChosen(attach, "");
      mark(attach);
      return;
    }
    var action = button.getAttribute("data-voice");
    if (action === "record") { record(attach); }
    else if (action === "stop") { stop(attach); }
    else if (action === "delete") { clearVoice(attach); mark(attach); }
  });

  // ------------------------------------------------------------------ voice
  function voiceStatus(attach, text) {
    var status = attach.querySelector("[data-voice-status]");
    status.textContent = text || "";
    status.hidden = !text;
  }

  function buttons(attach, recording) {
    attach.querySelector('[data-voice="record"]').hidden = recording;
    attach.querySelector('[data-voice="stop"]').hidden = !recording;
  }

  function recorderType() {
    var types = ["audio/ogg;codecs=opus", "audio/webm;codecs=opus", "audio/webm", "audio/mp4"];
    for (var i = 0; i < types.length; i++) {
      if (window.MediaRecorder.isTypeSupported && window.MediaRecorder.isTypeSupported(types[i])) { return types[i]; }
    }
    return "";
  }

  function record(attach) {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !window.MediaRecorder) {
      say(attach, attach.getAttribute("data-voice-unsupported"));
      return;
    }
    navigator.mediaDevices.getUserMedia({ audio: true }).then(function (stream) {
      var type = recorderType();
      var recorder = type ? new MediaRecorder(stream, { mimeType: type }) : new MediaRecorder(stream);
      var chunks = [];
      recorder.ondataavailable = function (e) { if (e.data && e.data.size) { chunks.push(e.data); } };
      recorder.onstop = function () {
        stream.getTracks().forEach(function (track) { track.stop(); });
        buttons(attach, false);
        voiceStatus(attach, "");
        var blob = new Blob(chunks, { type: recorder.mimeType || type || "audio/webm" });
        if (!blob.size) { return; }
        clearVoice(attach);
        inputOf(attach).value = "";
        dropHeld(attach);
        showChosen(attach, "");
        attach.__olchatVoice = blob;
        var audio = attach.querySelector("[data-voice-audio]");
        attach.__olchatVoiceUrl = URL.createObjectURL(blob);
        audio.src = attach.__olchatVoiceUrl;
        attach.querySelector("[data-voice-preview]").hidden = false;
        mark(attach);
      };
      attach.__olchatRecorder = recorder;
      recorder.start();
      buttons(attach, true);
      voiceStatus(attach, attach.getAttribute("data-voice-recording"));
    }).catch(function (error) {
      var name = error && error.name;
      var key = name === "NotAllowedError" || name === "SecurityError" ? "data-voice-denied"
        : name === "NotFoundError" || name === "OverconstrainedError" || name === "NotReadableError" ? "data-voice-no-device"
        : "data-voice-unsupported";
      say(attach, attach.getAttribute(key));
    });
  }

  function stop(attach) {
    var recorder = attach.__olchatRecorder;
    if (recorder && recorder.state !== "inactive") { recorder.stop(); }
    attach.__olchatRecorder = null;
  }

  function clearVoice(attach) {
    if (attach.__olchatVoiceUrl) { URL.revokeObjectURL(attach.__olchatVoiceUrl); }
    attach.__olchatVoice = null;
    attach.__olchatVoiceUrl = null;
    var preview = attach.querySelector("[data-voice-preview]");
    preview.hidden = true;
    preview.querySelector("audio").removeAttribute("src");
  }

  // ------------------------------------------------------------------ sending
  document.addEventListener("htmx:configRequest", function (evt) {
    var form = evt.detail.elt;
    if (!form || !form.matches || !form.matches("form.compose")) { return; }
    var attach = form.querySelector("[data-attach]");
    if (!attach || !hasMedia(attach)) { return; }
    evt.detail.path = attach.getAttribute("data-file-url");
    var params = evt.detail.formData;
    if (attach.__olchatVoice) {
      params.set("file", attach.__olchatVoice, "voice");
      params.set("voice", "1");
    } else if (!chosenFile(attach)) {
      params.delete("file");  // the server keeps the file: nothing to upload
    }
    form.__olchatUploading = !!(attach.__olchatVoice || chosenFile(attach));
  });

  document.addEventListener("htmx:xhr:progress", function (evt) {
    var form = evt.target;
    if (!form || !form.__olchatUploading || !evt.detail.lengthComputable || !evt.detail.total) { return; }
    var box = form.querySelector("[data-upload-progress]");
    var bar = box ? box.querySelector("progress") : null;
    if (!bar) { return; }
    box.hidden = false;
    var percent = Math.min(100, Math.round(evt.detail.loaded * 100 / evt.detail.total));
    bar.value = percent;
    bar.setAttribute("aria-valuetext", percent + "%");
  });

  document.addEventListener("htmx:afterRequest", function (evt) {
    var form = evt.detail.elt;
    if (form && form.__olchatUploading) {
      form.__olchatUploading = false;
      var box = form.querySelector("[data-upload-progress]");
      if (box) { box.hidden = true; }
    }
  });
})();
