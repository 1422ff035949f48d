// Console behaviour without inline script: confirmations and SMTP form hints.
(function () {
  "use strict";

  // <button data-confirm="..."> asks before submitting its form.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-confirm]");
    if (button && !window.confirm(button.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });

  // Audit Logs: the From/To fields show only for a custom time range.
  var range = document.querySelector("[data-range-select]");
  if (range) {
    var showCustom = function () {
      document.querySelectorAll(".custom-range").forEach(function (field) {
        if (range.value === "custom") {
          field.removeAttribute("data-hidden");
        } else {
          field.setAttribute("data-hidden", "");
        }
      });
    };
    range.addEventListener("change", showCustom);
    showCustom();
  }

  // Focus the error summary after a failed save, so it is read out first.
  var summary = document.getElementById("error-summary");
  if (summary) {
    summary.focus();
  }

  // TLS hint: what the TLS switch and the port mean together.
  var form = document.querySelector("[data-smtp-form]");
  if (!form) {
    return;
  }
  var port = form.querySelector("#id_port");
  var securityChoices = form.querySelectorAll("input[name=security]");
  var insecure = document.getElementById("insecure-option");
  var hint = document.getElementById("tls-hint");
  var portHint = document.getElementById("id_port_hint");
  // Security follows the port (465: implicit TLS; else STARTTLS) until the
  // admin picks one.
  var securityPicked = false;

  function security() {
    var chosen = form.querySelector("input[name=security]:checked");
    return chosen ? chosen.value : "none";
  }

  function choose(value) {
    securityChoices.forEach(function (choice) { choice.checked = choice.value === value; });
  }

  function describe() {
    var number = parseInt(port.value, 10);
    var text;
    var value = security();
    if (value === "none") {
      text = "No encryption: the connection is not encrypted and authentication is not possible. Plain SMTP usually uses port 25.";
      if (number === 465) {
        text += " Port 465 expects implicit TLS: choose Implicit TLS, or use port 25.";
      }
    } else if (value === "ssl") {
      text = "Implicit TLS (SMTPS): the connection is encrypted from the first byte, usually on port 465.";
    } else {
      text = "STARTTLS on port " + (isNaN(number) ? "?" : number) +
        ": the server must offer STARTTLS, or sending fails (never falls back to plain text). Usually port 587.";
    }
    hint.textContent = text;
    if (portHint) {
      portHint.textContent = value === "none"
        ? "25 for plain SMTP (no encryption)."
        : "587 for STARTTLS, 465 for implicit TLS.";
    }
    if (insecure) {
      // Skipping certificate verification only means something with TLS.
      insecure.hidden = value === "none";
      if (insecure.hidden) {
        insecure.querySelector("input").checked = false;
      }
    }
  }

  function followPort() {
    var number = parseInt(port.value, 10);
    if (!securityPicked && security() !== "none") {
      choose(number === 465 ? "ssl" : "starttls");
    }
    describe();
  }

  securityChoices.forEach(function (choice) {
    choice.addEventListener("change", function () {
      securityPicked = true;
      describe();
    });
  });
  port.addEventListener("input", followPort);
  describe();

  // Authentication: only the fields of the chosen method (and provider) show.
  var authSelect = form.querySelector("#id_auth_method");
  var provider = form.querySelector("#id_oauth2_provider");
  var authHint = document.getElementById("auth-method-hint");
  var presetNote = document.getElementById("provider-preset");
  var AUTH_HINTS = {
    password: "Username and password, sent with AUTH PLAIN, LOGIN or CRAM-MD5 over TLS.",
    oauth2: "An OAuth2 access token (XOAUTH2) from Microsoft 365, Google or another provider; Username is the mailbox to send as. Needs TLS.",
    certificate: "The TLS client certificate (under Advanced) authenticates; no AUTH command is sent.",
    none: "No authentication: for relays that accept mail from this console's address."
  };
  // What each provider documents for XOAUTH2; filled in on choosing it, and
  // free to change afterwards.
  var PRESETS = {
    microsoft: { host: "smtp.office365.com", port: 587, mode: "starttls" },
    google: { host: "smtp.gmail.com", port: 587, mode: "starttls" }
  };

  function authMethod() {
    return authSelect ? authSelect.value : "password";
  }

  function showAuthFields() {
    var method = authMethod();
    form.querySelectorAll("[data-auth]").forEach(function (node) {
      node.hidden = node.getAttribute("data-auth") !== method;
    });
    var chosenProvider = provider ? provider.value : "";
    form.querySelectorAll("[data-provider]").forEach(function (node) {
      node.hidden = node.getAttribute("data-provider").split(" ").indexOf(chosenProvider) === -1;
    });
    if (authHint) {
      authHint.textContent = AUTH_HINTS[method] || "";
    }
    // The client certificate's fields sit in Advanced: open it when they
    // are what authenticates.
    var certificate = form.querySelector("#id_client_cert");
    if (method === "certificate" && certificate && certificate.closest("details")) {
      certificate.closest("details").open = true;
    }
  }

  function applyPreset() {
    var preset = PRESETS[provider.value];
    if (!preset) {
      presetNote.textContent = "";
      return;
    }
    form.querySelector("#id_host").value = preset.host;
    port.value = preset.port;
    choose(preset.mode);
    presetNote.textContent = "Filled in: Host " + preset.host + ", Port " + preset.port +
      ", STARTTLS. Change them if your provider says otherwise.";
    describe();
  }

  if (authSelect) {
    authSelect.addEventListener("change", showAuthFields);
  }
  if (provider) {
    provider.addEventListener("change", function () {
      applyPreset();
      showAuthFields();
    });
  }
  showAuthFields();

  // Send Test Email / Verify: queue the test, then follow its steps live.
  var testUrl = form.getAttribute("data-test-url");
  var result = document.getElementById("test-result");
  var statusLine = document.getElementById("test-status");
  var stepsList = document.getElementById("test-steps");
  var testButtons = form.querySelectorAll("[data-test-mode]");
  var STEP_LABELS = {
    configuration: "Configuration",
    claimed: "Picked up by a worker",
    token: "OAuth2 token",
    resolve: "Resolve host name (DNS)",
    connect: "Connect (TCP)",
    greeting: "Server greeting",
    tls: "TLS",
    ehlo: "EHLO",
    auth: "Authenticate",
    mail_from: "MAIL FROM (sender)",
    rcpt_to: "RCPT TO (recipient)",
    data: "DATA (message)",
    rset: "RSET (nothing sent)"
  };
  // A field inside a hidden part (another provider's) is shown when flagged.
  function reveal(container) {
    var hiddenPart = container.closest("[hidden]");
    while (hiddenPart) {
      hiddenPart.hidden = false;
      hiddenPart = hiddenPart.parentElement.closest("[hidden]");
    }
  }
  var ADVANCED = [
    "retries", "sender_email", "client_cert", "client_key", "messages_per_minute",
    "max_connections", "failover"
  ];

  function clearTestErrors() {
    document.querySelectorAll(".js-test-error").forEach(function (node) { node.remove(); });
    document.querySelectorAll(".js-test-flagged").forEach(function (node) {
      node.classList.remove("has-error", "js-test-flagged");
    });
  }

  // Fields named as the API names them, mapped to this form's.
  var FORM_FIELD = { use_tls: "security" };

  function flagField(name, message) {
    name = FORM_FIELD[name] || name;
    var container = document.getElementById("field-" + name);
    if (!container) {
      return;
    }
    var details = container.closest("details");
    if (ADVANCED.indexOf(name) !== -1 || details) {
      details.open = true;
    }
    reveal(container);
    container.classList.add("has-error", "js-test-flagged");
    var note = document.createElement("p");
    note.className = "field-error js-test-error";
    note.textContent = message;
    container.appendChild(note);
  }

  // The button a test was started with: focus returns to it at the end (the
  // buttons are disabled meanwhile, and focus waits on the live status line).
  var activeButton = null;
  // The level of the configuration in effect under test ("": the form's values).
  var inEffect = "";
  // Since when the current step runs, to show its elapsed time when it is slow.
  var progress = { name: "", since: 0 };

  function setBusy(busy) {
    testButtons.forEach(function (button) { button.disabled = busy; });
    if (busy) {
      statusLine.focus();
    } else if (activeButton) {
      activeButton.focus();
    }
  }

  function running(email) {
    if (email.status === "queued") {
      return "Queued: waiting for a worker…";
    }
    if (email.progress !== progress.name) {
      progress = { name: email.progress, since: Date.now() };
    }
    var seconds = Math.floor((Date.now() - progress.since) / 1000);
    return "Running: " + (STEP_LABELS[email.progress] || email.progress || "starting") + "…" +
      (seconds >= 2 ? " (" + seconds + " s)" : "");
  }

  function say(text, kind) {
    result.hidden = false;
    statusLine.textContent = text;
    statusLine.className = "test-status" + (kind ? " test-status-" + kind : "");
  }

  function renderSteps(steps) {
    stepsList.textContent = "";
    steps.forEach(function (step) {
      var item = document.createElement("li");
      item.className = "step step-" + step.status;
      item.setAttribute("data-step", step.name);
      var head = document.createElement("div");
      head.className = "step-head";
      var mark = step.status === "ok" ? "✓" : step.status === "failed" ? "✗"
        : step.status === "retried" ? "↻" : "…";
      head.textContent = mark + " " + (STEP_LABELS[step.name] || step.name);
      if (step.status !== "running") {
        var timing = document.createElement("span");
        timing.className = "step-time";
        timing.textContent = step.duration_ms + " ms";
        head.appendChild(timing);
      }
      item.appendChild(head);
      var lines = [];
      if (step.detail) { lines.push(step.detail); }
      if (step.reply_code || step.reply) {
        lines.push("Server: " + (step.reply_code || "") + " " + (step.reply || ""));
      }
      lines.forEach(function (line) {
        var text = document.createElement("div");
        text.className = "step-text";
        text.textContent = line;
        item.appendChild(text);
      });
      if (step.status === "failed" && step.hint) {
        var hint = document.createElement("div");
        hint.className = "step-hint";
        hint.textContent = step.hint;
        item.appendChild(hint);
      }
      stepsList.appendChild(item);
    });
  }

  // Called once with the final email of the test running (Save & test).
  var afterTest = null;

  function finish(email) {
    renderSteps(email.steps || []);
    if (afterTest) {
      var then = afterTest;
      afterTest = null;
      window.setTimeout(function () { then(email); }, 0);
    }
    // Which configuration was tested, when it was not the form's values.
    var which = inEffect ? " (the " + inEffect + " configuration in effect)" : "";
    if (email.status === "sent") {
      var last = (email.steps || []).slice(-1)[0] || {};
      if (email.kind === "verify") {
        say("Verified" + which + ": every step up to RCPT TO worked with " + email.server + "; nothing was sent.", "ok");
      } else {
        say("Sent" + which + ": " + email.server + " accepted the message (" + (last.reply_code || "") + " " + (last.reply || "") + ").", "ok");
      }
      setBusy(false);
      return;
    }
    var failed = (email.steps || []).filter(function (s) { return s.status === "failed"; })[0] || {};
    var where = STEP_LABELS[failed.name] || email.failed_step || "a step";
    say("Failed at " + where + which + ": " + (email.error || "") + " " + (email.hint || ""), "bad");
    setBusy(false);
    if (email.field && !inEffect) {
      flagField(email.field, "The test failed here: " + (email.hint || email.error || ""));
    }
  }

  function poll(url, deadline) {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (email) {
        if (email.status === "sent" || email.status === "failed") {
          finish(email);
          return;
        }
        renderSteps(email.steps || []);
        say(running(email), "busy");
        if (Date.now() > deadline) {
          setBusy(false);
          say("Still running after a minute: the worker may be busy or stopped. The result will appear in the audit log.", "bad");
          return;
        }
        window.setTimeout(function () { poll(url, deadline); }, 250);
      })
      .catch(function () {
        setBusy(false);
        say("Lost contact with the console while waiting for the result; reload the page.", "bad");
      });
  }

  testButtons.forEach(function (button) {
    button.addEventListener("click", function () {
      afterTest = null;
      startTest(button, button.getAttribute("data-test-mode"));
    });
  });

  // Save & test: Verify the form's values with the live steps, then save them
  // (the server takes the passed verification's id); a failure is shown, and
  // Save becomes Save anyway. Without JavaScript the server verifies itself.
  var saveTest = form.querySelector("[data-save-test]");
  var savePlain = document.getElementById("save-plain");
  var verified = document.getElementById("verified-email");
  var verifiedSubmit = false;
  if (saveTest) {
    saveTest.addEventListener("click", function (event) {
      if (verifiedSubmit) {
        return;
      }
      event.preventDefault();
      afterTest = function (email) {
        if (email.status === "sent") {
          verified.value = email.id;
          verifiedSubmit = true;
          form.requestSubmit(saveTest);
          return;
        }
        savePlain.textContent = "Save anyway";
        statusLine.textContent += " Not saved: fix the settings and Save & test again, or Save anyway (it is then marked untested).";
      };
      startTest(saveTest, "verify");
    });
  }

  function startTest(button, mode) {
    clearTestErrors();
    stepsList.textContent = "";
    activeButton = button;
    inEffect = "";
    progress = { name: "", since: Date.now() };
    say("Queued…", "busy");
    setBusy(true);
    var data = new FormData(form);
    data.set("mode", mode);
    fetch(testUrl, { method: "POST", body: data, credentials: "same-origin" })
      .then(function (response) {
        return response.json().then(function (body) { return { status: response.status, body: body }; });
      })
      .then(function (answer) {
        if (answer.status === 202) {
          inEffect = answer.body.in_effect || "";
          if (inEffect) {
            say("Queued: testing the " + inEffect + " configuration in effect (Host is empty and this level has none of its own)…", "busy");
          }
          poll(answer.body.status_url, Date.now() + 60000);
          return;
        }
        setBusy(false);
        say(answer.body.error || "The test could not start.", "bad");
        Object.keys(answer.body.fields || {}).forEach(function (name) {
          flagField(name, answer.body.fields[name].join(" "));
        });
      })
      .catch(function () {
        setBusy(false);
        say("The console did not answer; check your connection and try again.", "bad");
      });
  }
})();
