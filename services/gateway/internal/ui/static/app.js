// Alga Google integrations — the little script of the settings pages. It writes through the public
// API (/api/v1/...) with the session cookie (HttpOnly: this script never sees a token) and the
// session's CSRF token, shows the API's field errors beside their fields, and reloads the page
// (server-rendered) after a change.
(function () {
  "use strict";
  var csrfMeta = document.querySelector('meta[name="alga-csrf"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  function announce(text) {
    var s = $("#page-status");
    if (s) { s.textContent = ""; window.setTimeout(function () { s.textContent = text; }, 30); }
  }

  function pageError(text) {
    var e = $("#page-error");
    if (!e) { return; }
    e.textContent = text;
    e.hidden = !text;
    if (text) { e.scrollIntoView({ block: "nearest" }); }
  }

  // api calls the public API and resolves to {ok, status, data, field, message}.
  function api(method, path, body) {
    var opts = { method: method, credentials: "same-origin", headers: { "Accept": "application/json" } };
    if (method !== "GET") { opts.headers["X-Alga-CSRF"] = csrf; }
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch(path, opts).then(function (resp) {
      return resp.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : {}; } catch (e) { data = { message: text }; }
        var out = { ok: resp.ok, status: resp.status, data: data, field: "", message: "" };
        if (!resp.ok) {
          out.message = (data && data.message) || ("HTTP " + resp.status);
          ((data && data.details) || []).forEach(function (d) {
            if (d && d.metadata && d.metadata.field) { out.field = d.metadata.field; }
            if (!out.field && d && d.fieldViolations && d.fieldViolations.length) { out.field = d.fieldViolations[0].field; }
          });
          if (resp.status === 401) { out.message = "Your session has ended. Sign in again to continue."; }
        }
        return out;
      });
    }, function () {
      return { ok: false, status: 0, data: null, field: "", message: "The server could not be reached." };
    });
  }

  function reloadWith(params) {
    var u = new URL(window.location.href);
    ["done", "google_oauth", "continue"].forEach(function (k) { u.searchParams.delete(k); });
    Object.keys(params || {}).forEach(function (k) {
      if (params[k] === "") { u.searchParams.delete(k); } else { u.searchParams.set(k, params[k]); }
    });
    window.location.assign(u.pathname + "?" + u.searchParams.toString());
  }

  // Field errors: an element with id "<prefix>err-<field>" beside the input "<prefix><field>".
  function clearErrors(form, prefix) {
    $all(".field-error", form).forEach(function (e) { e.textContent = ""; e.hidden = true; });
    $all("[aria-invalid]", form).forEach(function (i) { i.removeAttribute("aria-invalid"); });
  }

  function showError(form, prefix, res, formErrorId) {
    var field = (res.field || "").split(".")[0];
    var slot = field ? document.getElementById(prefix + "err-" + field) : null;
    if (slot) {
      slot.textContent = res.message.replace(new RegExp("^" + res.field + ": "), "");
      slot.hidden = false;
      var input = document.getElementById(prefix + field) || (field === "service_account_key_json" ? document.getElementById("sa_key_file") : null);
      if (input) { input.setAttribute("aria-invalid", "true"); input.focus(); }
      announce("Not saved: " + slot.textContent);
      return;
    }
    var fe = document.getElementById(formErrorId);
    if (fe) { fe.textContent = res.message; fe.hidden = false; fe.focus && fe.focus(); }
    else { pageError(res.message); }
    announce("Not saved: " + res.message);
  }

  function busy(button, on) {
    if (!button) { return; }
    button.disabled = on;
    button.setAttribute("aria-busy", on ? "true" : "false");
  }

  // Confirmation dialog (native <dialog>: focus is trapped, Escape cancels).
  function confirmAction(text, okLabel) {
    var dlg = $("#confirm-dialog");
    return new Promise(function (resolve) {
      if (!dlg || typeof dlg.showModal !== "function") { resolve(false); return; }
      $("#confirm-text").textContent = text;
      $("#confirm-ok").textContent = okLabel || "Confirm";
      dlg.returnValue = "cancel";
      dlg.addEventListener("close", function onClose() {
        dlg.removeEventListener("close", onClose);
        resolve(dlg.returnValue === "ok");
      });
      dlg.showModal();
      $("#confirm-cancel").focus();
    });
  }

  // Copy buttons.
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var ta = document.createElement("textarea");
      ta.value = text;
      ta.setAttribute("readonly", "");
      ta.className = "sr-only";
      document.body.appendChild(ta);
      ta.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      document.body.removeChild(ta);
      if (ok) { resolve(); } else { reject(new Error("copy failed")); }
    });
  }
  $all("button.copy").forEach(function (b) {
    b.addEventListener("click", function () {
      var text = b.getAttribute("data-copy");
      copyText(text).then(function () {
        b.textContent = "Copied";
        announce("Copied " + text);
        window.setTimeout(function () { b.textContent = "Copy"; }, 2000);
      }, function () {
        b.textContent = "Select and copy";
        announce("Copying is blocked by the browser: select the text and copy it.");
      });
    });
  });

  // Google setup form: partial update (only what was filled in or changed is sent).
  var gform = $("#google-config-form");
  if (gform) {
    var same = $("#use_same_app");
    var calFields = $("#calendar-fields");
    var syncSame = function () { calFields.hidden = same.checked; };
    same.addEventListener("change", syncSame);
    syncSame();
    gform.addEventListener("submit", function (ev) {
      ev.preventDefault();
      clearErrors(gform, "");
      var body = {};
      var v = function (id) { return document.getElementById(id).value; };
      var project = v("project_id").trim();
      if (project !== $("#project_id").getAttribute("data-initial")) { body.project_id = project; }
      if (v("gmail_client_id").trim() !== "") { body.gmail_client_id = v("gmail_client_id"); }
      if (v("gmail_client_secret") !== "") { body.gmail_client_secret = v("gmail_client_secret"); }
      var sameInitial = same.getAttribute("data-initial") === "true";
      if (same.checked !== sameInitial) { body.use_same_app = same.checked; }
      if (!same.checked) {
        if (v("calendar_client_id").trim() !== "") { body.calendar_client_id = v("calendar_client_id"); }
        if (v("calendar_client_secret") !== "") { body.calendar_client_secret = v("calendar_client_secret"); }
      }
      var file = $("#sa_key_file").files[0];
      var pasted = v("service_account_key_json");
      var button = $("#save-config");
      var send = function (key) {
        if (key !== "") { body.service_account_key_json = key; }
        if (Object.keys(body).length === 0) {
          var fe = $("#form-error");
          fe.textContent = "Nothing to save: every field is unchanged.";
          fe.hidden = false;
          return;
        }
        busy(button, true);
        api("PUT", "/api/v1/google/config", body).then(function (res) {
          busy(button, false);
          if (res.ok) { reloadWith({ done: "saved" }); return; }
          showError(gform, "", res, "form-error");
        });
      };
      if (file && pasted.trim() !== "") {
        showError(gform, "", { field: "service_account_key_json", message: "Choose a key file or paste the JSON, not both." }, "form-error");
        return;
      }
      if (file) {
        file.text().then(send, function () {
          showError(gform, "", { field: "service_account_key_json", message: "The key file could not be read." }, "form-error");
        });
      } else {
        send(pasted);
      }
    });
  }

  // Test configuration.
  var testBtn = $("#test-config");
  if (testBtn) {
    testBtn.addEventListener("click", function () {
      var out = $("#test-results");
      out.textContent = "Testing…";
      busy(testBtn, true);
      api("POST", "/api/v1/google/config:test", {}).then(function (res) {
        busy(testBtn, false);
        out.textContent = "";
        if (!res.ok) { pageError(res.message); return; }
        var overall = (res.data.overall || "").replace("CHECK_RESULT_", "").toLowerCase();
        var head = document.createElement("p");
        head.id = "test-overall";
        head.innerHTML = "";
        var badge = document.createElement("span");
        badge.className = "badge badge-" + overall;
        badge.textContent = overall.toUpperCase();
        head.appendChild(document.createTextNode("Overall: "));
        head.appendChild(badge);
        out.appendChild(head);
        var ol = document.createElement("ol");
        ol.className = "checks";
        ol.id = "test-checks";
        (res.data.checks || []).forEach(function (c) {
          var r = (c.result || "").replace("CHECK_RESULT_", "").toLowerCase();
          var li = document.createElement("li");
          li.className = r;
          li.setAttribute("data-check", c.id);
          var b = document.createElement("span");
          b.className = "badge badge-" + r;
          b.textContent = r.toUpperCase();
          var t = document.createElement("strong");
          t.textContent = " " + c.title + " ";
          li.appendChild(b);
          li.appendChild(t);
          li.appendChild(document.createTextNode(c.message || ""));
          if (c.remedy) {
            var rem = document.createElement("p");
            rem.className = "remedy";
            rem.textContent = "What to do: " + c.remedy;
            li.appendChild(rem);
          }
          ol.appendChild(li);
        });
        out.appendChild(ol);
        announce("Test finished: " + overall);
      });
    });
  }

  // Reset providers (behind a confirmation).
  var resetBtn = $("#reset-providers");
  if (resetBtn) {
    resetBtn.addEventListener("click", function () {
      confirmAction(resetBtn.getAttribute("data-confirm"), resetBtn.getAttribute("data-confirm-ok")).then(function (ok) {
        if (!ok) { resetBtn.focus(); return; }
        busy(resetBtn, true);
        api("POST", "/api/v1/google/providers:reset", {}).then(function (res) {
          busy(resetBtn, false);
          var out = $("#reset-result");
          if (!res.ok) { pageError(res.message); return; }
          var d = res.data;
          out.textContent = "";
          var p = document.createElement("p");
          p.id = "reset-summary";
          p.className = "notice notice-ok";
          p.textContent = "Reset done: " + (d.gmail_providers_reset || 0) + " Gmail mailbox(es) and " +
            (d.calendar_providers_reset || 0) + " calendar(s) disconnected, " + (d.connections_cleared || 0) + " connection(s) cleared.";
          out.appendChild(p);
          (d.warnings || []).forEach(function (w) {
            var wp = document.createElement("p");
            wp.className = "notice notice-warn";
            wp.textContent = w;
            out.appendChild(wp);
          });
          announce(p.textContent);
        });
      });
    });
  }

  // Gmail provider forms.
  function gmailBody(prefix, creating) {
    var v = function (n) { var e = document.getElementById(prefix + "-" + n); return e ? e.value.trim() : ""; };
    var labels = v("label_filters").split(",").map(function (s) { return s.trim(); }).filter(function (s) { return s !== ""; });
    var body = {
      display_name: v("display_name"),
      label_filters: labels,
      inbound_defaults: { board_id: v("board_id"), status_id: v("status_id"), priority_id: v("priority_id"), client_id: v("client_id"), category_id: v("category_id") },
      active: document.getElementById(prefix + "-active").checked
    };
    if (creating) { body.mailbox = v("mailbox"); } else { body.has_label_filters = true; }
    return body;
  }
  var createForm = $("#gmail-create-form");
  if (createForm) {
    createForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      clearErrors(createForm, "new-");
      var button = $("#create-provider");
      busy(button, true);
      api("POST", "/api/v1/gmail/providers", gmailBody("new", true)).then(function (res) {
        busy(button, false);
        if (res.ok) { reloadWith({ provider: res.data.provider.id, done: "created" }); return; }
        showError(createForm, "new-", res, "new-form-error");
      });
    });
  }
  var editForm = $("#gmail-edit-form");
  if (editForm) {
    editForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      clearErrors(editForm, "edit-");
      var id = editForm.getAttribute("data-id");
      var button = $("#save-provider");
      busy(button, true);
      api("PATCH", "/api/v1/gmail/providers/" + encodeURIComponent(id), gmailBody("edit", false)).then(function (res) {
        busy(button, false);
        if (res.ok) { reloadWith({ provider: id, done: "updated" }); return; }
        showError(editForm, "edit-", res, "edit-form-error");
      });
    });
  }

  // Calendar provider form.
  var calForm = $("#calendar-create-form");
  if (calForm) {
    calForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      clearErrors(calForm, "cal-");
      var button = $("#create-calendar");
      busy(button, true);
      api("POST", "/api/v1/calendar/providers", {
        display_name: $("#cal-display_name").value.trim(), calendar_id: $("#cal-calendar_id").value.trim()
      }).then(function (res) {
        busy(button, false);
        if (res.ok) { reloadWith({ provider: res.data.provider.id, done: "created" }); return; }
        showError(calForm, "cal-", res, "cal-form-error");
      });
    });
  }

  // Provider actions: connect (full-page redirect to Google and back), refresh, disconnect, delete.
  $all("button[data-action]").forEach(function (b) {
    b.addEventListener("click", function () {
      var action = b.getAttribute("data-action");
      var kind = b.getAttribute("data-kind") || (window.location.pathname.indexOf("calendar") >= 0 ? "calendar" : "gmail");
      var id = encodeURIComponent(b.getAttribute("data-id"));
      var base = "/api/v1/" + kind + "/providers/" + id;
      var run = function () {
        busy(b, true);
        pageError("");
        var call;
        switch (action) {
          case "connect": call = api("POST", base + ":connect", {}); break;
          case "refresh": call = api("POST", base + ":refresh", {}); break;
          case "disconnect": call = api("POST", base + ":disconnect", {}); break;
          case "delete": call = api("DELETE", base); break;
          default: return;
        }
        call.then(function (res) {
          busy(b, false);
          if (!res.ok) { pageError(res.message); return; }
          if (action === "connect") { window.location.assign(res.data.authorization_url); return; }
          if (action === "delete") { reloadWith({ done: "deleted", provider: "" }); return; }
          reloadWith({ done: action === "refresh" ? "refreshed" : "disconnected", provider: b.getAttribute("data-id") });
        });
      };
      if (b.hasAttribute("data-confirm")) {
        confirmAction(b.getAttribute("data-confirm"), b.getAttribute("data-confirm-ok")).then(function (ok) {
          if (ok) { run(); } else { b.focus(); }
        });
      } else {
        run();
      }
    });
  });
})();
